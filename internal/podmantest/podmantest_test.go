package podmantest

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/enginetest"
)

// The harness is an enginetest.Engine.
var _ enginetest.Engine = (*Engine)(nil)

func TestIntegrationPodmanEngine(t *testing.T) {
	e := Start(t)
	id := e.Run(t, "--name", "probe", "--label", "k=v", Image, "sleep", "1000")
	if len(id) != 64 {
		t.Fatalf("Run returned %q, want a 64-character id", id)
	}

	resp, err := e.HTTPClient().Get("http://podman/v1.41/containers/json")
	if err != nil {
		t.Fatalf("listing containers through the API: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list answered %s", resp.Status)
	}
	var list []struct {
		ID     string `json:"Id"`
		Labels map[string]string
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatalf("decoding list: %v", err)
	}
	if len(list) != 1 || list[0].ID != id || list[0].Labels["k"] != "v" {
		t.Fatalf("API lists %+v, want only %s with label k=v", list, id)
	}

	if got := e.Podman(t, "run", "--rm", Image, "sh", "-c", "echo hi | tr h H"); got != "Hi" {
		t.Fatalf("busybox applets: got %q, want Hi", got)
	}
	e.Remove(t, "probe")
	if out := e.Podman(t, "ps", "-aq"); strings.TrimSpace(out) != "" {
		t.Fatalf("after Remove, podman ps -aq = %q", out)
	}
}

// TestIntegrationPodmanCleanup: after the test that started an engine ends,
// nothing of it is left: no directory, no mount, no process.
func TestIntegrationPodmanCleanup(t *testing.T) {
	var dir string
	t.Run("engine", func(t *testing.T) {
		e := Start(t)
		dir = e.Dir()
		e.Run(t, "--name", "left-running", Image, "sleep", "1000")
		e.Run(t, "--name", "exited", Image, "true")
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("engine directory %s still exists (err=%v)", dir, err)
	}
	if m := enginetest.MountsUnder(dir); len(m) != 0 {
		t.Errorf("mounts left behind: %v", m)
	}
	if pids := enginetest.ProcessesWith("environ", []byte("CONTAINERS_CONF="+filepath.Join(dir, "containers.conf")+"\x00")); len(pids) != 0 {
		t.Errorf("engine processes left behind: %v", pids)
	}
}

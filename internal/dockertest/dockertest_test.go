package dockertest

import (
	"encoding/json"
	"net/http"
	"os"
	"testing"

	"github.com/berth-dev/berth/internal/enginetest"
)

// The harness is an enginetest.Engine.
var _ enginetest.Engine = (*Engine)(nil)

func TestIntegrationDockerEngine(t *testing.T) {
	e := Start(t)
	id := e.RunContainer(t, enginetest.Spec{Name: "probe", Labels: map[string]string{"k": "v"},
		Memory: 32 << 20, CPUs: 0.5, Cmd: []string{"sleep", "1000"}})
	if len(id) != 64 {
		t.Fatalf("RunContainer returned %q, want a 64-character id", id)
	}
	st := e.InspectContainer(t, "probe")
	if st.ID != id || st.Status != "running" || st.Pid <= 0 || st.StartedAt.IsZero() {
		t.Fatalf("inspect probe: %+v, want running with a pid", st)
	}

	resp, err := e.HTTPClient().Get("http://docker/v1.41/containers/probe/json")
	if err != nil {
		t.Fatalf("inspecting through the API: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("inspect answered %s", resp.Status)
	}
	var d struct {
		Config     struct{ Labels map[string]string }
		HostConfig struct{ Memory, MemorySwap, NanoCpus int64 }
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatalf("decoding inspect: %v", err)
	}
	if d.Config.Labels["k"] != "v" || d.HostConfig.Memory != 32<<20 || d.HostConfig.MemorySwap != 32<<20 || d.HostConfig.NanoCpus != 5e8 {
		t.Errorf("container created with %+v, want label k=v, 32 MiB without swap, 0.5 CPUs", d)
	}

	e.RunContainer(t, enginetest.Spec{Name: "exit3", Cmd: []string{"/bin/sh", "-c", "echo hi | tr h H; exit 3"}})
	if code := e.WaitContainer(t, "exit3"); code != 3 {
		t.Errorf("exit3 exited with %d, want 3", code)
	}
	e.TagImage(t, enginetest.Image, "docker.io/coollabsio/coolify-helper:1.0.15")
	e.RunContainer(t, enginetest.Spec{Name: "helper", Image: "docker.io/coollabsio/coolify-helper:1.0.15", Cmd: []string{"true"}})
	e.RemoveContainer(t, "probe")
	if ids := e.ContainerIDs(t); len(ids) != 2 {
		t.Errorf("after removing probe, %d containers, want 2 (exit3, helper)", len(ids))
	}
}

// TestIntegrationDockerCleanup: after the test that started an engine ends,
// nothing of it is left: no directory, no mount, no process.
func TestIntegrationDockerCleanup(t *testing.T) {
	var dir string
	t.Run("engine", func(t *testing.T) {
		e := Start(t)
		dir = e.Dir()
		e.RunContainer(t, enginetest.Spec{Name: "left-running", Cmd: []string{"sleep", "1000"}})
		e.RunContainer(t, enginetest.Spec{Name: "exited", Cmd: []string{"true"}})
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("engine directory %s still exists (err=%v)", dir, err)
	}
	if m := enginetest.MountsUnder(dir); len(m) != 0 {
		t.Errorf("mounts left behind: %v", m)
	}
	if pids := enginetest.ProcessesWith("cmdline", []byte(dir+"/")); len(pids) != 0 {
		t.Errorf("engine processes left behind: %v", pids)
	}
}

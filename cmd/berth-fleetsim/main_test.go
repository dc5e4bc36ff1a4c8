package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
)

func TestIntegrationFleetsimBinary(t *testing.T) {
	bin := testenv.Binary(t, "berth-fleetsim")
	dir := t.TempDir()
	sd := filepath.Join(dir, "targets.json")
	cfg := filepath.Join(dir, "prometheus.yml")
	control := testenv.FreePort(t)
	testenv.Start(t, bin, "--servers=4", "--build-servers=1", "--organizations=2", "--seed=9",
		"--file-sd.path="+sd, "--prometheus-config.path="+cfg, "--scrape-interval=5s",
		"--web.control-address="+control)
	testenv.WaitHTTP(t, "http://"+control+"/servers", 20*time.Second)

	var groups []struct{ Targets []string }
	data, err := os.ReadFile(sd)
	if err != nil || json.Unmarshal(data, &groups) != nil || len(groups) != 1 || len(groups[0].Targets) != 4 {
		t.Fatalf("file_sd %s: %s, %v", sd, data, err)
	}
	conf, err := os.ReadFile(cfg)
	if err != nil || !strings.Contains(string(conf), sd) || !strings.Contains(string(conf), "scrape_interval: 5s") {
		t.Errorf("prometheus config: %s, %v", conf, err)
	}
	resp, err := http.Get("http://" + groups[0].Targets[3] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := new(strings.Builder)
	_, _ = io.Copy(body, resp.Body)
	resp.Body.Close()
	if !strings.Contains(body.String(), `berth_server_info{organization="org-2",role="build",server="sim-0004"} 1`) {
		t.Errorf("4th server is not the build server of org-2:\n%.600s", body.String())
	}

	resp, err = http.Post("http://"+control+"/servers/sim-0001/answering?value=false", "", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("control: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get("http://" + groups[0].Targets[0] + "/metrics")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("stale server answered %v, %v; want 503", resp, err)
	}
	resp.Body.Close()
}

func TestBadDurationsRefused(t *testing.T) {
	for _, arg := range []string{"--scrape-interval=-5s", "--scrape-interval=0s", "--stale.after=-1m"} {
		if code := run([]string{arg}); code != 2 {
			t.Errorf("%s: exit %d, want 2", arg, code)
		}
	}
}

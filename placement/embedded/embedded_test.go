package embedded

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-dev/berth/internal/testenv"
)

// TestIntegrationEmbeddedAlertsAndReload: firing alerts reach a real
// Alertmanager; a bad configuration or rule file is refused on reload and
// the running ones stay; a good one takes effect.
func TestIntegrationEmbeddedAlertsAndReload(t *testing.T) {
	amBin := testenv.LookPath(t, "prometheus-alertmanager", "prometheus-alertmanager")
	dir := t.TempDir()
	amConfig := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(amConfig, []byte("route:\n  receiver: devnull\nreceivers:\n  - name: devnull\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	amAddr := testenv.FreePort(t)
	testenv.Start(t, amBin, "--config.file="+amConfig, "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+amAddr, "--cluster.listen-address=")
	testenv.WaitHTTP(t, "http://"+amAddr+"/-/ready", 30*time.Second)

	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	rulesFile := write("test.rules.yml", `groups:
  - name: test
    rules:
      - record: test:one
        expr: vector(1)
      - alert: BerthTestAlwaysFiring
        expr: vector(1)
        labels: {severity: none}
        annotations: {summary: "fires on every evaluation"}
`)
	config := write("prometheus.yml", "global:\n  evaluation_interval: 1s\nscrape_configs: []\n")
	e, err := New(Config{
		StoragePath: filepath.Join(dir, "data"), ConfigFile: config, RuleFiles: []string{rulesFile},
		AlertmanagerURL: "http://" + amAddr, ExternalURL: "http://berth.example:9831",
	}, testenv.Logger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + amAddr + "/api/v2/alerts")
		if err != nil {
			t.Fatal(err)
		}
		var alerts []struct {
			Labels       map[string]string `json:"labels"`
			GeneratorURL string            `json:"generatorURL"`
		}
		err = json.NewDecoder(resp.Body).Decode(&alerts)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(alerts) == 1 && alerts[0].Labels["alertname"] == "BerthTestAlwaysFiring" {
			if !strings.HasPrefix(alerts[0].GeneratorURL, "http://berth.example:9831/") {
				t.Errorf("generator URL %q", alerts[0].GeneratorURL)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alert never reached alertmanager; it has %+v", alerts)
		}
		time.Sleep(200 * time.Millisecond)
	}

	ctx := context.Background()
	hasRecord := func(name string) bool {
		v, err := e.Query(ctx, name, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return len(v) == 1
	}
	for !hasRecord("test:one") {
		time.Sleep(100 * time.Millisecond)
	}

	write("prometheus.yml", "global: [not a map\n")
	if err := e.Reload(); err == nil || !strings.Contains(err.Error(), config) {
		t.Errorf("reload of a broken config: %v, want an error naming %s", err, config)
	}
	write("prometheus.yml", "global:\n  evaluation_interval: 1s\nscrape_configs: []\n")
	write("test.rules.yml", "groups:\n  - name: test\n    rules:\n      - record: test:two\n        expr: sum(\n")
	if err := e.Reload(); err == nil || !strings.Contains(err.Error(), "test.rules.yml") {
		t.Errorf("reload of a broken rule file: %v, want an error naming it", err)
	}
	// The old rules still run.
	time.Sleep(1500 * time.Millisecond)
	if !hasRecord("test:one") {
		t.Error("the old rules stopped after a refused reload")
	}

	write("test.rules.yml", "groups:\n  - name: test\n    rules:\n      - record: test:two\n        expr: vector(2)\n")
	if err := e.Reload(); err != nil {
		t.Fatalf("valid reload: %v", err)
	}
	deadline = time.Now().Add(15 * time.Second)
	for !hasRecord("test:two") {
		if time.Now().After(deadline) {
			t.Fatal("the reloaded rule never evaluated")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

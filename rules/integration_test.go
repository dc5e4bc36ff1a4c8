package rules

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/berth-dev/berth/internal/testenv"
)

// deliveryTimeout bounds how long an alert may take to travel exporter →
// Prometheus → Alertmanager → receiver. With 1s scrapes, 1s evaluations,
// `for:` cut to 1s and 1s grouping it takes a few seconds; the bound only
// keeps a broken pipeline from hanging the test.
const deliveryTimeout = 2 * time.Minute

// webhookMessage is the part of Alertmanager's webhook payload the tests read.
type webhookMessage struct {
	Receiver string `json:"receiver"`
	Status   string `json:"status"`
	Alerts   []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"alerts"`
}

// receivedMessage is one webhook call: the path says which receiver of the
// example configuration Alertmanager routed it to.
type receivedMessage struct {
	path string
	msg  webhookMessage
}

// startWebhook is the receiver at the end of the pipeline: a small HTTP
// server inside the test.
func startWebhook(t *testing.T) (string, <-chan receivedMessage) {
	t.Helper()
	ch := make(chan receivedMessage, 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m webhookMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("webhook: decoding payload: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// Never block Alertmanager: a test that already has what it
		// waited for stops reading.
		select {
		case ch <- receivedMessage{path: r.URL.Path, msg: m}:
		default:
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, ch
}

// exampleAlertmanagerConfig is rules/alertmanager.example.yml with its
// receivers replaced by webhooks to hookURL/<receiver name> (no secrets, no
// outside network) and grouping waits cut to a second. Routing and
// inhibition are the shipped ones.
func exampleAlertmanagerConfig(t *testing.T, hookURL string) []byte {
	t.Helper()
	var cfg map[string]any
	readYAML(t, filepath.Join(rulesDir(), "alertmanager.example.yml"), &cfg)
	delete(cfg, "global")
	route, ok := cfg["route"].(map[string]any)
	if !ok {
		t.Fatalf("alertmanager.example.yml has no route")
	}
	route["group_wait"] = "1s"
	route["group_interval"] = "1s"
	receivers, ok := cfg["receivers"].([]any)
	if !ok {
		t.Fatalf("alertmanager.example.yml has no receivers")
	}
	var hooks []any
	for _, r := range receivers {
		name := r.(map[string]any)["name"].(string)
		hooks = append(hooks, map[string]any{
			"name":            name,
			"webhook_configs": []any{map[string]any{"url": hookURL + "/" + name, "send_resolved": false}},
		})
	}
	cfg["receivers"] = hooks
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startAlertmanager runs Debian's Alertmanager 0.25 with config on a free
// loopback port and returns its base URL.
func startAlertmanager(t *testing.T, config []byte) string {
	t.Helper()
	bin := testenv.LookPath(t, "prometheus-alertmanager", "prometheus-alertmanager")
	dir := t.TempDir()
	path := filepath.Join(dir, "alertmanager.yml")
	writeFile(t, path, config)
	addr := testenv.FreePort(t)
	testenv.Start(t, bin,
		"--config.file="+path,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
	)
	base := "http://" + addr
	testenv.WaitHTTP(t, base+"/-/ready", 30*time.Second)
	return base
}

// forDuration matches the `for:` of an alerting rule.
var forDuration = regexp.MustCompile(`(?m)^([ \t]+for:[ \t]*)\S+[ \t]*$`)

// shortenedRules copies the shipped rule files to a temporary directory with
// every `for:` rewritten to 1s, so that an alert fires within seconds
// instead of minutes; nothing else changes.
func shortenedRules(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	rewritten := 0
	for _, f := range ruleFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rewritten += len(forDuration.FindAll(b, -1))
		writeFile(t, filepath.Join(dir, filepath.Base(f)), forDuration.ReplaceAll(b, []byte("${1}1s")))
	}
	if rewritten == 0 {
		t.Fatalf("no `for:` found to shorten: the rewrite no longer matches the rule files")
	}
	return dir
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationAlertDelivery runs the whole pipeline with real components:
// berth-exporter with a 1 % disk threshold (so the root filesystem is over
// it), Prometheus 2.42 scraping it every second with the shipped rules, and
// Alertmanager 0.25 with the example configuration routing to a webhook in
// the test. The disk alert must arrive with the exporter's server name, and
// a recording rule must agree with the exporter's raw metric.
func TestIntegrationAlertDelivery(t *testing.T) {
	prometheus := testenv.LookPath(t, "prometheus", "prometheus")
	hookURL, messages := startWebhook(t)
	amURL := startAlertmanager(t, exampleAlertmanagerConfig(t, hookURL))

	const serverName = "e2e-server"
	exporterAddr := testenv.FreePort(t)
	testenv.Start(t, testenv.Binary(t, "berth-exporter"),
		"--web.listen-address="+exporterAddr,
		"--server.name="+serverName,
		"--server.disk-usage-threshold=0.01",
		"--no-collector.containers",
	)
	testenv.WaitHTTP(t, "http://"+exporterAddr+"/metrics", 30*time.Second)

	rulesCopy := shortenedRules(t)
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %s/*.rules.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: [%q]
scrape_configs:
  - job_name: berth
    static_configs:
      - targets: [%q]
`, rulesCopy, strings.TrimPrefix(amURL, "http://"), exporterAddr)
	configPath := filepath.Join(dir, "prometheus.yml")
	writeFile(t, configPath, []byte(config))
	promAddr := testenv.FreePort(t)
	testenv.Start(t, prometheus,
		"--config.file="+configPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr,
	)
	promURL := "http://" + promAddr
	testenv.WaitHTTP(t, promURL+"/-/ready", 30*time.Second)

	t.Run("disk alert reaches the receiver", func(t *testing.T) {
		deadline := time.After(deliveryTimeout)
		for {
			select {
			case <-deadline:
				t.Fatalf("no BerthDiskUsageHigh for server %s reached the webhook within %s", serverName, deliveryTimeout)
			case m := <-messages:
				for _, a := range m.msg.Alerts {
					if a.Labels["alertname"] != "BerthDiskUsageHigh" {
						continue
					}
					if a.Labels["server"] != serverName {
						t.Fatalf("disk alert has server=%q, want %q (labels %v)", a.Labels["server"], serverName, a.Labels)
					}
					if m.path != "/warning" {
						t.Errorf("disk alert (severity %q) was routed to %s, want the warning receiver", a.Labels["severity"], m.path)
					}
					if a.Status != "firing" || a.Labels["mountpoint"] == "" {
						t.Errorf("disk alert: status %q, mountpoint %q; want firing with a mountpoint", a.Status, a.Labels["mountpoint"])
					}
					if d := a.Annotations["description"]; !strings.Contains(d, "on server "+serverName+" is ") || !strings.Contains(d, "threshold of 1%") {
						t.Errorf("disk alert description %q does not name the server and its 1%% threshold", d)
					}
					return
				}
			}
		}
	})

	t.Run("recording rule equals the exporter's memory total", func(t *testing.T) {
		raw := scrapeValue(t, "http://"+exporterAddr+"/metrics", "node_memory_MemTotal_bytes")
		query := fmt.Sprintf("server:node_memory_total:bytes{server=%q}", serverName)
		got := waitQuery(t, promURL, query, deliveryTimeout)
		if got != raw {
			t.Fatalf("%s = %v, exporter's node_memory_MemTotal_bytes = %v", query, got, raw)
		}
	})
}

// TestIntegrationAlertmanagerExampleInhibition sends alerts straight to a
// real Alertmanager running the example configuration: "server down" must
// silence the other alerts of that server, and only of that server.
func TestIntegrationAlertmanagerExampleInhibition(t *testing.T) {
	hookURL, messages := startWebhook(t)
	amURL := startAlertmanager(t, exampleAlertmanagerConfig(t, hookURL))

	alerts := `[
  {"labels": {"alertname": "BerthServerDown", "severity": "critical", "server": "alpha"}},
  {"labels": {"alertname": "BerthDiskUsageHigh", "severity": "warning", "server": "alpha", "mountpoint": "/"}},
  {"labels": {"alertname": "BerthDiskUsageHigh", "severity": "warning", "server": "beta", "mountpoint": "/"}}
]`
	resp, err := http.Post(amURL+"/api/v2/alerts", "application/json", strings.NewReader(alerts))
	if err != nil {
		t.Fatalf("posting alerts: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("posting alerts: %s: %s", resp.Status, body)
	}

	// Alertmanager reports each alert's inhibition state on its API.
	want := map[string]string{"BerthServerDown/alpha": "active", "BerthDiskUsageHigh/alpha": "suppressed", "BerthDiskUsageHigh/beta": "active"}
	deadline := time.Now().Add(deliveryTimeout)
	for {
		got := alertStates(t, amURL)
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alert states %v, want %v", got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Routing by severity: the two active alerts reach their receivers.
	arrived := map[string]string{}
	timeout := time.After(deliveryTimeout)
	for len(arrived) < 2 {
		select {
		case <-timeout:
			t.Fatalf("only %v reached the webhook within %s", arrived, deliveryTimeout)
		case m := <-messages:
			for _, a := range m.msg.Alerts {
				key := a.Labels["alertname"] + "/" + a.Labels["server"]
				if key == "BerthDiskUsageHigh/alpha" {
					t.Fatalf("the inhibited alert %s reached receiver %s", key, m.path)
				}
				arrived[key] = m.path
			}
		}
	}
	if arrived["BerthServerDown/alpha"] != "/critical" || arrived["BerthDiskUsageHigh/beta"] != "/warning" {
		t.Fatalf("alerts reached %v, want BerthServerDown/alpha at /critical and BerthDiskUsageHigh/beta at /warning", arrived)
	}
}

// alertStates maps alertname/server to Alertmanager's state of the alert.
func alertStates(t *testing.T, amURL string) map[string]string {
	t.Helper()
	resp, err := http.Get(amURL + "/api/v2/alerts")
	if err != nil {
		t.Fatalf("listing alerts: %v", err)
	}
	defer resp.Body.Close()
	var list []struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatalf("decoding alerts: %v", err)
	}
	states := map[string]string{}
	for _, a := range list {
		states[a.Labels["alertname"]+"/"+a.Labels["server"]] = a.Status.State
	}
	return states
}

// scrapeValue reads one unlabelled sample from a /metrics page.
func scrapeValue(t *testing.T, metricsURL, name string) float64 {
	t.Helper()
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatalf("scraping %s: %v", metricsURL, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1024*1024), 1024*1024)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("parsing %s: %v", sc.Text(), err)
			}
			return v
		}
	}
	t.Fatalf("%s not found on %s (scan error: %v)", name, metricsURL, sc.Err())
	return 0
}

// waitQuery polls an instant query until it returns exactly one sample.
func waitQuery(t *testing.T, promURL, query string, timeout time.Duration) float64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		vals, err := instantQuery(promURL, query)
		if err == nil && len(vals) == 1 {
			return vals[0]
		}
		if err == nil && len(vals) > 1 {
			t.Fatalf("%s returned %d samples, want 1", query, len(vals))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s returned no sample within %s (last error: %v)", query, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func instantQuery(promURL, query string) ([]float64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(promURL + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return nil, fmt.Errorf("querying %s: %w", query, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading answer to %s: %w", query, err)
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&r); err != nil {
		return nil, fmt.Errorf("decoding answer to %s: %w", query, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s failed: %s", query, r.Error)
	}
	var out []float64
	for _, s := range r.Data.Result {
		str, ok := s.Value[1].(string)
		if !ok {
			return nil, fmt.Errorf("query %s: unexpected value %v", query, s.Value)
		}
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: parsing %q: %w", query, str, err)
		}
		out = append(out, v)
	}
	return out, nil
}

package dashboards

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/podmantest"
	"github.com/berth-dev/berth/internal/testenv"
)

// fleetSeed makes berth-fleetsim generate, among 4 servers, one build server
// running two build containers and two organizations (org-1, org-2).
const fleetSeed = "1"

// testPolicy gives the organizations quotas; org-1 (the real server and
// two simulated ones) is over its server quota so that violations show.
const testPolicy = `quotas:
  organizations:
    org-1: {max_servers: 1, max_applications: 100, max_cpu_cores: 256, max_memory_gb: 1024}
    org-2: {max_servers: 10, max_applications: 100, max_cpu_cores: 256, max_memory_gb: 1024}
builds:
  # The simulated build server already runs two builds: room for two more.
  servers: {sim-0004: {concurrent_builds: 4}}
  # Running builds outweigh CPU and memory (at most 70 points), so the
  # deployer's first build goes to real-build (none running), whose engine
  # the test controls, rather than to sim-0004 (two running).
  weights: {active: 1000}
fit:
  # A 5-minute rate over a store a few seconds old reads far too little idle
  # time, so every server looks CPU-saturated for the first minutes; the
  # test still needs one deployment placed (requests ask no CPU).
  max_utilisation: {cpu: 1.0}
`

type placementStack struct {
	placement string   // base URL
	address   string   // host:port of berth-placement
	exporters []string // host:port of the real berth-exporters
	fleetSD   string   // file_sd file listing the simulated servers
}

// The real servers: real-1 (an application server with the workload) and
// real-build (a build server on its own engine).
const realServers = 2

// startPlacementStack runs berth-fleetsim and berth-placement in embedded
// mode scraping the fleet, the real exporters and itself every second with
// the shipped rules, waits for the recording rules to cover every server,
// and keeps a deployer's traffic going while the test runs; the deployer
// runs its tracked build on buildEngine (real-build's engine).
func startPlacementStack(t *testing.T, exporters []string, buildEngine *podmantest.Engine) placementStack {
	t.Helper()
	fleetsim := binary(t, "berth-fleetsim")
	placementBin := binary(t, "berth-placement")
	dir := t.TempDir()

	fileSD := filepath.Join(dir, "fleet.json")
	testenv.Start(t, fleetsim, "--servers=4", "--build-servers=1", "--organizations=2", "--seed="+fleetSeed, "--file-sd.path="+fileSD)
	waitFor(t, "berth-fleetsim writes its targets", 30*time.Second, func() error {
		_, err := os.Stat(fileSD)
		return err
	})

	addr := testenv.FreePort(t)
	config := scrapeConfig(exporters, fileSD, addr)
	configFile := filepath.Join(dir, "prometheus.yml")
	policyFile := filepath.Join(dir, "policy.yml")
	for path, content := range map[string]string{configFile: config, policyFile: testPolicy} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Start(t, placementBin,
		"--web.listen-address="+addr,
		"--storage.path="+filepath.Join(dir, "data"),
		"--scrape.config-file="+configFile,
		"--placement.policy-file="+policyFile,
	)
	base := "http://" + addr
	testenv.WaitHTTP(t, base+"/-/healthy", 60*time.Second)

	waitRules(t, newPromClient(base+"/prometheus"))

	waitFor(t, "placement sees every server fresh", 60*time.Second, func() error {
		body, err := fetch(base + "/api/v1/servers")
		if err != nil {
			return err
		}
		var list struct {
			Servers []struct {
				Name      string `json:"name"`
				Freshness struct {
					State string `json:"state"`
				} `json:"freshness"`
			} `json:"servers"`
		}
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			return err
		}
		fresh := 0
		for _, s := range list.Servers {
			if s.Freshness.State == "fresh" {
				fresh++
			}
		}
		if want := 4 + realServers; fresh < want {
			return fmt.Errorf("%d of %d servers fresh: %.500s", fresh, want, body)
		}
		return nil
	})

	deployer(t, base, buildEngine)
	return placementStack{placement: base, address: addr, exporters: exporters, fleetSD: fileSD}
}

// waitRules waits until the recording rules cover the 4 simulated servers
// and the real ones.
func waitRules(t *testing.T, prom *promClient) {
	t.Helper()
	waitFor(t, "recording rules cover every server", 90*time.Second, func() error {
		for _, q := range []string{
			fmt.Sprintf(`count(server:node_cpu_utilisation:rate5m) >= %d`, 4+realServers),
			fmt.Sprintf(`count(server:container_cpu_usage_cores:rate5m) >= %d`, 4+realServers),
			`count(organization:berth_servers:count) >= 2`,
		} {
			n, _, err := prom.instant(context.Background(), q)
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("%s: no answer yet", q)
			}
		}
		return nil
	})
}

// scrapeConfig is the Prometheus configuration both stores use: the real
// exporters, the simulated fleet and berth-placement, every second.
func scrapeConfig(exporters []string, fleetSD, placement string, ruleFiles ...string) string {
	quoted := make([]string, len(exporters))
	for i, e := range exporters {
		quoted[i] = strconv.Quote(e)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: berth-exporter
    static_configs:
      - targets: [%s]
  - job_name: berth-fleetsim
    file_sd_configs:
      - files: [%q]
  - job_name: berth-placement
    static_configs:
      - targets: [%q]
`, strings.Join(quoted, ", "), fleetSD, placement)
	if len(ruleFiles) > 0 {
		config += "rule_files:\n"
		for _, f := range ruleFiles {
			config += fmt.Sprintf("  - %q\n", f)
		}
	}
	return config
}

// startPrometheus2 runs Debian's Prometheus 2.42 over the same targets with
// the rule files of rules/, as a user's remote Prometheus would.
func startPrometheus2(t *testing.T, stack placementStack) *promClient {
	t.Helper()
	bin := testenv.LookPath(t, "prometheus", "prometheus")
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	rulesGlob := filepath.Join(testenv.RepoRoot(), "rules", "*.rules.yml")
	if err := os.WriteFile(config, []byte(scrapeConfig(stack.exporters, stack.fleetSD, stack.address, rulesGlob)), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreePort(t)
	testenv.Start(t, bin, "--config.file="+config, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	testenv.WaitHTTP(t, "http://"+addr+"/-/ready", 60*time.Second)
	prom := newPromClient("http://" + addr)
	waitRules(t, prom)
	return prom
}

// trackedBuild is the deployment id (container name) of the build the
// deployer runs for real on real-build, for application 10.
const trackedBuild = "b7n4m2k9x3p8q1w5e6r0t2y4"

// deployer plays the deployer (Coolify) against the API: first a whole
// build (placed on real-build, started, run there as a real helper
// container, finished) so that the per-application build metrics have a
// duration and a peak; then once each kind of request (placed and
// reserved, no fit, builds, quota checks, a bad request), then every second
// until the test ends a server listing and non-reserving deployment and
// build placements, and every few seconds a build placed, started and
// finished, as a busy deployer would, so that request, decision, query and
// build rates are not zero.
func deployer(t *testing.T, base string, buildEngine *podmantest.Engine) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	call := func(method, path, body string) (int, string) {
		req, err := http.NewRequest(method, base+path, bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Logf("%s %s: %v", method, path, err)
			return 0, ""
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, string(answer)
	}
	runTrackedBuild(t, base, call, buildEngine)

	// Reservations the dashboards must show: they have to succeed.
	for _, body := range []string{
		`{"requirements": {"memory": "64m"}, "organization": "org-2", "reserve": true, "ttl": "1h"}`,
		`{"application_id": "7", "profile": "simple_static", "reserve": true, "ttl": "1h"}`,
	} {
		path := "/api/v1/placements"
		if strings.Contains(body, "profile") {
			path = "/api/v1/builds/placements"
		}
		code, answer := call(http.MethodPost, path, body)
		if code != http.StatusOK || !strings.Contains(answer, `"placed": true`) || !strings.Contains(answer, `"reservation"`) {
			t.Fatalf("deployer: POST %s %s → %d, want a placement with a reservation:\n%s", path, body, code, answer)
		}
	}
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/servers", ""},
		{http.MethodGet, "/api/v1/servers/real-1", ""},
		{http.MethodGet, "/api/v1/servers/no-such-server", ""},
		{http.MethodPost, "/api/v1/placements", `{"requirements": {"cpu": "0.25", "memory": "128m"}, "reserve": true}`},
		{http.MethodPost, "/api/v1/placements", `{"requirements": {"cpu": "1000"}}`},
		{http.MethodPost, "/api/v1/placements", `{"requirements": {"cpu": "0.1", "memory": "64m"}, "organization": "org-2", "reserve": true}`},
		{http.MethodPost, "/api/v1/placements/check", `{"server": "real-1", "requirements": {"cpu": "0.1"}}`},
		{http.MethodPost, "/api/v1/builds/placements", `{"application_id": "8", "profile": "simple_static", "reserve": true}`},
		{http.MethodGet, "/api/v1/build-servers", ""},
		{http.MethodGet, "/api/v1/organizations", ""},
		{http.MethodPost, "/api/v1/organizations/org-2/deployments/check", `{"requirements": {"cpu": "0.5", "memory": "256m"}}`},
		{http.MethodPost, "/api/v1/placements", `{"requirements": {"cpu": "lots"}}`},
		{http.MethodGet, "/api/v1/reservations", ""},
	} {
		code, answer := call(c.method, c.path, c.body)
		t.Logf("deployer: %s %s %s → %d %.300s", c.method, c.path, c.body, code, strings.Join(strings.Fields(answer), " "))
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				call(http.MethodGet, "/api/v1/servers", "")
				call(http.MethodPost, "/api/v1/placements", `{"requirements": {"cpu": "0.1", "memory": "64m"}}`)
				call(http.MethodPost, "/api/v1/builds/placements", `{"application_id": "9", "profile": "simple_static"}`)
				if n%5 == 0 {
					// A short build, so builds keep finishing while any
					// store (the stock Prometheus starts later) watches.
					_, answer := call(http.MethodPost, "/api/v1/builds/placements", `{"application_id": "11", "profile": "simple_static", "reserve": true, "ttl": "1m"}`)
					if id := reservationID(answer); id != "" {
						call(http.MethodPost, "/api/v1/builds/"+id+"/start", "")
						call(http.MethodPost, "/api/v1/builds/"+id+"/finish", "")
					}
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// reservationID reads the reservation id of a placement answer ("" when
// none).
func reservationID(answer string) string {
	var p struct {
		Reservation *struct {
			ID string `json:"id"`
		} `json:"reservation"`
	}
	if json.Unmarshal([]byte(answer), &p) != nil || p.Reservation == nil {
		return ""
	}
	return p.Reservation.ID
}

// runTrackedBuild places a build of application 10 (it must go to
// real-build), starts it, runs it as a Coolify helper container on
// real-build's engine until the store has scraped it twice, finishes it and
// removes the container. berth-placement then exports the build's duration
// and the peak memory its history lookup found.
func runTrackedBuild(t *testing.T, base string, call func(method, path, body string) (int, string), engine *podmantest.Engine) {
	t.Helper()
	body := `{"application_id": "10", "profile": "simple_static", "reserve": true, "ttl": "1h"}`
	code, answer := call(http.MethodPost, "/api/v1/builds/placements", body)
	var placed struct {
		Chosen string `json:"chosen"`
	}
	_ = json.Unmarshal([]byte(answer), &placed)
	id := reservationID(answer)
	if code != http.StatusOK || id == "" || placed.Chosen != "real-build" {
		t.Fatalf("deployer: POST /api/v1/builds/placements %s → %d, want a reservation on real-build:\n%s", body, code, answer)
	}
	if code, answer := call(http.MethodPost, "/api/v1/builds/"+id+"/start", ""); code != http.StatusOK {
		t.Fatalf("deployer: start build %s → %d: %s", id, code, answer)
	}
	// The build holds some memory, as a real one would.
	engine.Run(t, "--name", trackedBuild, buildHelperImage, "/bin/sh", "-c", `x=$(head -c 8000000 /dev/zero | tr "\0" a); sleep 3600`)
	prom := newPromClient(base + "/prometheus")
	waitFor(t, "the embedded store scrapes the build container", 60*time.Second, func() error {
		q := `count_over_time(container_memory_working_set_bytes{role="build", name="` + trackedBuild + `"}[1m]) >= 2`
		n, _, err := prom.instant(context.Background(), q)
		if err == nil && n == 0 {
			err = fmt.Errorf("%s: no answer yet", q)
		}
		return err
	})
	code, answer = call(http.MethodPost, "/api/v1/builds/"+id+"/finish", "")
	if code != http.StatusOK || !strings.Contains(answer, `"history_recorded": true`) {
		t.Fatalf("deployer: finish build %s → %d, want it recorded: %s", id, code, answer)
	}
	engine.Remove(t, trackedBuild)
	metrics, err := fetch(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`berth_build_last_duration_seconds{application_id="10",server="real-build"}`,
		`berth_build_last_peak_memory_bytes{application_id="10",server="real-build"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("deployer: berth-placement's /metrics has no %s after the build finished", want)
		}
	}
	for _, line := range strings.Split(metrics, "\n") {
		if strings.Contains(line, `application_id="10"`) {
			t.Logf("deployer: tracked build: %s", line)
		}
	}
}

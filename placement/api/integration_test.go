package api_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/placement/api"
)

// TestIntegrationEmbedded runs the real berth-exporter and berth-placement
// (embedded Prometheus) on loopback and asks the API about this machine.
func TestIntegrationEmbedded(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	exporterBin := testenv.Binary(t, "berth-exporter")
	placementBin := testenv.Binary(t, "berth-placement")
	dir := t.TempDir()
	exporterAddr, placementAddr := testenv.FreePort(t), testenv.FreePort(t)
	const serverName = "berth-itest"

	testenv.Start(t, exporterBin, "--web.listen-address="+exporterAddr, "--server.name="+serverName)
	testenv.WaitHTTP(t, "http://"+exporterAddr+"/metrics", 30*time.Second)

	// Scrape and evaluate every 2s instead of 15s, so the first rule
	// evaluation comes quickly.
	promConfig := writeFile(t, dir, "prometheus.yml", fmt.Sprintf(`global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 2s
scrape_configs:
  - job_name: berth-exporter
    static_configs: [{targets: [%q]}]
  - job_name: berth-placement
    static_configs: [{targets: [%q]}]
`, exporterAddr, placementAddr))
	// This machine is shared with compilers and other tests: its CPU can
	// be saturated at any time, and the default 90% ceiling would then
	// (rightly) refuse any placement. Allow the whole CPU so that the
	// test is about the API, not about the load of the CI machine.
	// A request without cpu is charged fit.default_request.cpu: 0 here, so
	// the placement fits however busy this machine is.
	policyFile := writeFile(t, dir, "policy.yml", "fit:\n  max_utilisation:\n    cpu: 1.0\n  default_request:\n    cpu: 0\n")
	storage := filepath.Join(dir, "data")
	args := []string{
		"--web.listen-address=" + placementAddr, "--storage.path=" + storage,
		"--scrape.config-file=" + promConfig, "--placement.policy-file=" + policyFile,
	}
	base := "http://" + placementAddr
	proc := testenv.Start(t, placementBin, args...)
	testenv.WaitHTTP(t, base+"/-/ready", 60*time.Second)

	view := waitFresh(t, base, serverName, 90*time.Second)
	freshAt := time.Now()
	memTotalKB := memTotalKiB(t)
	if want := math.Round(memTotalKB/1024*100) / 100; view.Memory.TotalMB != want {
		t.Errorf("memory.total_mb %v, want %v (MemTotal %v kB in /proc/meminfo)", view.Memory.TotalMB, want, memTotalKB)
	}
	if view.CPU.CoreCount <= 0 || view.Disk.TotalGB <= 0 || view.Role != "app" {
		t.Errorf("server view %+v", view)
	}

	var small struct {
		Placed      bool   `json:"placed"`
		Chosen      string `json:"chosen"`
		Summary     string `json:"summary"`
		Reservation *struct {
			ID     string `json:"id"`
			Server string `json:"server"`
		} `json:"reservation"`
	}
	post(t, base+"/api/v1/placements", `{"requirements":{"cpu":"0","memory":"64m","disk":"10m"},"reserve":true,"ttl":"1h"}`, &small)
	// kill -9 right after the answer: no shutdown hook runs, so the
	// reservation survives only if it was durable before the answer left.
	if err := proc.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = proc.Cmd.Wait()
	if !small.Placed || small.Chosen != serverName || small.Reservation == nil || small.Reservation.Server != serverName {
		t.Fatalf("small placement: %+v", small)
	}

	// Restart on the same storage path: the reservation and the samples
	// scraped before are still there, and the reservation still counts.
	proc = testenv.Start(t, placementBin, args...)
	testenv.WaitHTTP(t, base+"/-/ready", 60*time.Second)

	var list api.ReservationList
	get(t, base+"/api/v1/reservations", &list)
	if len(list.Reservations) != 1 || list.Reservations[0].ID != small.Reservation.ID {
		t.Fatalf("reservations after kill -9 and restart: %+v, want %s", list.Reservations, small.Reservation.ID)
	}
	after := waitFresh(t, base, serverName, 90*time.Second)
	if after.Reserved.Memory != 64<<20 || after.Reserved.Disk != 10<<20 {
		t.Errorf("reserved on %s after restart: %+v, want the reservation's 64 MiB memory and 10 MiB disk", serverName, after.Reserved)
	}

	var huge struct {
		Placed   bool `json:"placed"`
		Rejected []struct {
			Server  string   `json:"server"`
			Reasons []string `json:"reasons"`
		} `json:"rejected"`
	}
	post(t, base+"/api/v1/placements", `{"requirements":{"cpu":1000},"reserve":true}`, &huge)
	if huge.Placed || len(huge.Rejected) != 1 || huge.Rejected[0].Server != serverName || !slices.Contains(huge.Rejected[0].Reasons, "insufficient_cpu") {
		t.Fatalf("1000 cores: %+v, want refused with insufficient_cpu", huge)
	}

	// A graceful restart (SIGTERM) keeps them too.
	proc.Stop()
	testenv.Start(t, placementBin, args...)
	testenv.WaitHTTP(t, base+"/-/ready", 60*time.Second)
	get(t, base+"/api/v1/reservations", &list)
	if len(list.Reservations) != 1 || list.Reservations[0].ID != small.Reservation.ID {
		t.Errorf("reservations after a graceful restart: %+v, want %s", list.Reservations, small.Reservation.ID)
	}
	// An instant query at a time before the restart only sees samples
	// written by the first process: they survived in the TSDB.
	var q struct {
		Status string `json:"status"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	get(t, base+"/prometheus/api/v1/query?"+url.Values{
		"query": {fmt.Sprintf(`berth_server_info{server=%q}`, serverName)},
		"time":  {strconv.FormatFloat(float64(freshAt.UnixMilli())/1000, 'f', 3, 64)},
	}.Encode(), &q)
	if q.Status != "success" || len(q.Data.Result) != 1 {
		t.Errorf("samples from before the restart: %+v", q)
	}
}

func waitFresh(t *testing.T, base, server string, timeout time.Duration) api.ServerView {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/api/v1/servers/" + server)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err := api.CheckAnswer(resp.Request, resp.StatusCode, resp.Header, b); err != nil {
				t.Errorf("GET %s: %v", resp.Request.URL, err)
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
			var v api.ServerView
			if resp.StatusCode == 200 && json.Unmarshal(b, &v) == nil && v.Freshness.State == "fresh" {
				return v
			}
		} else {
			last = err.Error()
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s not fresh within %s; last answer: %s", server, timeout, last)
	return api.ServerView{}
}

func get(t *testing.T, u string, out any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	decode(t, resp, out)
}

func post(t *testing.T, u, body string, out any) {
	t.Helper()
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	decode(t, resp, out)
}

func decode(t *testing.T, resp *http.Response, out any) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, b)
	}
	if err := api.CheckAnswer(resp.Request, resp.StatusCode, resp.Header, b); err != nil {
		t.Errorf("%s %s: %v", resp.Request.Method, resp.Request.URL, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func memTotalKiB(t *testing.T) float64 {
	t.Helper()
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			v, err := strconv.ParseFloat(fields[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatal("no MemTotal in /proc/meminfo")
	return 0
}

// TestIntegrationRemoteUnreachable runs the real berth-placement in remote
// mode against a Prometheus that is not there, with bearer tokens: the API
// answers 503 (never a guess), tokens are enforced, and a bad policy on
// SIGHUP is refused while the process keeps serving and the rotated token
// file next to it is reloaded all the same; /-/reload then lists each
// file's outcome.
func TestIntegrationRemoteUnreachable(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	placementBin := testenv.Binary(t, "berth-placement")
	dir := t.TempDir()
	addr, nobody := testenv.FreePort(t), testenv.FreePort(t)
	tokens := writeFile(t, dir, "tokens", "itest-token\n")
	policyFile := writeFile(t, dir, "policy.yml", "scoring:\n  strategy: pack\n")
	proc := testenv.Start(t, placementBin, "--web.listen-address="+addr, "--storage.path="+filepath.Join(dir, "data"),
		"--prometheus.url=http://"+nobody, "--prometheus.timeout=2s",
		"--web.bearer-tokens-file="+tokens, "--placement.policy-file="+policyFile)
	base := "http://" + addr
	testenv.WaitHTTP(t, base+"/-/healthy", 30*time.Second)

	call := func(method, path, token string) (int, api.Error) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(`{"requirements":{"cpu":1}}`))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if err := api.CheckAnswer(req, resp.StatusCode, resp.Header, b); err != nil {
			t.Errorf("%s %s: %v", method, path, err)
		}
		var body struct{ Error api.Error }
		_ = json.Unmarshal(b, &body)
		return resp.StatusCode, body.Error
	}
	if status, e := call("GET", "/api/v1/servers", ""); status != 401 || e.Code != api.CodeUnauthenticated {
		t.Errorf("no token: %d %+v", status, e)
	}
	if status, e := call("GET", "/api/v1/servers", "wrong"); status != 401 || e.Code != api.CodeUnauthenticated {
		t.Errorf("wrong token: %d %+v", status, e)
	}
	for _, r := range [][2]string{{"GET", "/api/v1/servers"}, {"POST", "/api/v1/placements"}} {
		if status, e := call(r[0], r[1], "itest-token"); status != 503 || e.Code != api.CodeUnavailable {
			t.Errorf("%s %s with Prometheus down: %d %+v, want 503 unavailable", r[0], r[1], status, e)
		}
	}
	if status, _ := call("GET", "/-/ready", ""); status != 503 {
		t.Errorf("/-/ready with Prometheus down: %d", status)
	}

	writeFile(t, dir, "policy.yml", "scoring:\n  strategy: [not, a, strategy]\n")
	writeFile(t, dir, "tokens", "rotated-token\n")
	if err := proc.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(proc.Output(), "reload on SIGHUP failed") {
		if time.Now().After(deadline) {
			t.Fatalf("no failed reload logged after SIGHUP with a bad policy:\n%s", proc.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status, _ := call("GET", "/-/healthy", ""); status != 200 {
		t.Errorf("not serving after a refused reload: %d", status)
	}
	if status, e := call("GET", "/api/v1/servers", "rotated-token"); status != 503 {
		t.Errorf("rotated token after SIGHUP with a bad policy: %d %+v, want 503 (authenticated, Prometheus down)", status, e)
	}
	if status, _ := call("GET", "/api/v1/servers", "itest-token"); status != 401 {
		t.Errorf("token rotated out still accepted after SIGHUP: %d", status)
	}

	// /-/reload: 422 invalid_policy naming the field, each file listed.
	writeFile(t, dir, "tokens", "rotated-token\nthird-token\n")
	status, e := call("POST", "/-/reload", "rotated-token")
	if status != 422 || e.Code != api.CodeInvalidPolicy || e.Field != "scoring.strategy" {
		t.Errorf("/-/reload with a bad policy: %d %+v", status, e)
	}
	var details api.ReloadAnswer
	if raw, err := json.Marshal(e.Details); err != nil || json.Unmarshal(raw, &details) != nil || len(details.Reloaders) != 3 {
		t.Fatalf("/-/reload details %v, want the outcome of each of the 3 reloaders", e.Details)
	}
	for i, want := range []string{api.ReloadRefused, api.ReloadReloaded, api.ReloadReloaded} {
		if got := details.Reloaders[i]; got.Outcome != want {
			t.Errorf("reloader %q: %s, want %s", got.Name, got.Outcome, want)
		}
	}
	if status, _ := call("GET", "/api/v1/servers", "third-token"); status != 503 {
		t.Errorf("token added next to a bad policy not in force: %d", status)
	}
	for _, tok := range []string{"itest-token", "rotated-token", "third-token"} {
		if strings.Contains(proc.Output(), tok) {
			t.Errorf("the log shows the bearer token %s", tok)
		}
	}
}

package api

import (
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/quota"
	"github.com/berth-dev/berth/placement/reservation"
	"github.com/berth-dev/berth/placement/schedule"

	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-dev/berth/internal/fleetsim"
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/embedded"
	"github.com/berth-dev/berth/placement/promsource"
	berthrules "github.com/berth-dev/berth/rules"
)

// quotaTestPolicy: acme may have 2 servers (it has 3: over), 3
// applications, 6 cores and 6 GiB.
const quotaTestPolicy = `quotas:
  organizations:
    acme: {max_servers: 2, max_applications: 3, max_cpu_cores: 6, max_memory_gb: 6}
    trial: {max_memory_gb: 0}
`

// quotaFleet is testFleet with acme (app-1, build-1, app-stale) running
// applications a1 and a2 with 2 cores and 4 GiB of limits.
func quotaFleet() *placement.Snapshot {
	snap := testFleet()
	snap.Organizations = map[string]*placement.OrganizationUsage{
		"acme":   {Name: "acme", Servers: 3, Applications: 2, LimitedCPUCores: 2, LimitedMemoryBytes: 4 * gibF, ApplicationIDs: []string{"a1", "a2"}},
		"globex": {Name: "globex", Servers: 1},
	}
	return snap
}

// newQuotaEnv is newTestEnv with the quota admission in the placer and the
// quota collector on the registry, as cmd/berth-placement wires them.
func newQuotaEnv(t *testing.T, policyYAML string) *testEnv {
	t.Helper()
	p, err := policy.Parse([]byte(policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, fleet: &fakeFleet{snap: quotaFleet()}, reg: prometheus.NewRegistry(), dataDir: t.TempDir()}
	store, err := reservation.Open(e.dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	policies := policy.NewStaticStore(p)
	e.reg.MustRegister(quota.NewCollector(e.fleet, policies, store.List, nil))
	a, err := New(Options{
		Snapshots:  e.fleet,
		Policy:     policies,
		Placer:     schedule.NewPlacer(policies, store, quota.Admission()),
		Registerer: e.reg,
		Gatherer:   e.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.api = a
	srv := httptest.NewServer(checkAnswers(t, a))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

func TestOrganizations(t *testing.T) {
	e := newQuotaEnv(t, quotaTestPolicy)

	var list OrganizationList
	e.json("GET", "/api/v1/organizations", "", 200, &list)
	var names []string
	for _, o := range list.Organizations {
		names = append(names, o.Organization)
	}
	if want := []string{"acme", "globex", "trial"}; !slices.Equal(names, want) {
		t.Errorf("organizations %v, want %v", names, want)
	}

	var acme quota.Status
	e.json("GET", "/api/v1/organizations/acme", "", 200, &acme)
	if acme.Usage != (quota.Usage{Servers: 3, Applications: 2, CPUCores: 2, MemoryBytes: 4 << 30}) {
		t.Errorf("acme usage %+v", acme.Usage)
	}
	if acme.Compliant || len(acme.Violations) != 1 || acme.Violations[0].Message != "exceeded quota: acme, used: servers=3, limited: servers=2" {
		t.Errorf("acme compliance %v %+v", acme.Compliant, acme.Violations)
	}
	var globex quota.Status
	e.json("GET", "/api/v1/organizations/globex", "", 200, &globex)
	if !globex.Compliant || globex.Limits.Any() {
		t.Errorf("globex (no quota) %+v", globex)
	}
	// Unlimited is null, 0 is 0.
	_, b, _ := e.do("GET", "/api/v1/organizations/trial", "")
	if !bytes.Contains(b, []byte(`"memory_bytes": 0`)) || !bytes.Contains(b, []byte(`"cpu_cores": null`)) {
		t.Errorf("trial limits: %s", b)
	}

	var excess quota.Excess
	e.json("GET", "/api/v1/organizations/acme/excess-servers", "", 200, &excess)
	if !slices.Equal(excess.Keep, []string{"app-1", "app-stale"}) || !slices.Equal(excess.Excess, []string{"build-1"}) || *excess.MaxServers != 2 {
		t.Errorf("excess servers %+v", excess)
	}
}

func TestOrganizationDeploymentCheck(t *testing.T) {
	e := newQuotaEnv(t, quotaTestPolicy)
	var fits quota.Check
	e.json("POST", "/api/v1/organizations/acme/deployments/check", `{"requirements":{"cpu":"1.5","memory":"2g"},"new_application":true}`, 200, &fits)
	if !fits.Allowed || fits.Projected != (quota.Usage{Servers: 3, Applications: 3, CPUCores: 3.5, MemoryBytes: 6 << 30}) || len(fits.Messages) != 0 {
		t.Errorf("fitting deployment: %+v", fits)
	}
	var over quota.Check
	e.json("POST", "/api/v1/organizations/acme/deployments/check", `{"requirements":{"cpu":1,"memory":"3g"}}`, 200, &over)
	want := []string{"exceeded quota: acme, requested: memory=3Gi, used: memory=4Gi, limited: memory=6Gi"}
	if over.Allowed || !slices.Equal(over.Messages, want) {
		t.Errorf("over memory: allowed %v, messages %q, want %q", over.Allowed, over.Messages, want)
	}

	// The same deployment through POST /placements: 403, same message.
	status, b, _ := e.do("POST", "/api/v1/placements", `{"requirements":{"cpu":1,"memory":"3g"},"organization":"acme","reserve":true}`)
	if status != http.StatusForbidden {
		t.Fatalf("placement over quota: %d %s", status, b)
	}
	got := apiError(t, b)
	if got.Code != CodeQuotaExceeded || got.Message != want[0] || got.Details == nil {
		t.Errorf("placement over quota: %+v", got)
	}
	// A fitting one is placed and counted.
	var d PlacementResponse
	e.json("POST", "/api/v1/placements", `{"requirements":{"cpu":1,"memory":"1g"},"organization":"acme","application_id":"a3","reserve":true}`, 200, &d)
	if !d.Placed || d.Reservation == nil {
		t.Fatalf("fitting placement: %+v", d)
	}
	var acme quota.Status
	e.json("GET", "/api/v1/organizations/acme", "", 200, &acme)
	if acme.Usage.Applications != 3 || acme.Usage.MemoryBytes != 5<<30 || acme.Breakdown.Reserved.Reservations != 1 {
		t.Errorf("usage with the reservation: %+v, reserved %+v", acme.Usage, acme.Breakdown.Reserved)
	}
	// A fourth application is now refused.
	e.json("POST", "/api/v1/organizations/acme/deployments/check", `{"requirements":{"cpu":0.1,"memory":"64m"},"new_application":true}`, 200, &over)
	if over.Allowed || over.Messages[0] != "exceeded quota: acme, requested: applications=1, used: applications=3, limited: applications=3" {
		t.Errorf("fourth application: %+v", over)
	}

	// Metrics on /metrics, reservations included.
	if v := metricValue(t, e.reg, "berth_organization_usage", map[string]string{"organization": "acme", "resource": "memory_bytes"}); v != 5<<30 {
		t.Errorf("berth_organization_usage memory %v", v)
	}
	if v := metricValue(t, e.reg, "berth_organization_quota_limit", map[string]string{"organization": "acme", "resource": "servers"}); v != 2 {
		t.Errorf("berth_organization_quota_limit servers %v", v)
	}
	_, metrics, _ := e.do("GET", "/metrics", "")
	if !bytes.Contains(metrics, []byte(`berth_organization_quota_limit{organization="trial",resource="memory_bytes"} 0`)) {
		t.Errorf("/metrics lacks trial's zero memory limit")
	}
}

func TestOrganizationsBadInput(t *testing.T) {
	e := newQuotaEnv(t, quotaTestPolicy)
	for _, c := range []struct {
		method, path, body string
		status             int
		field              string
	}{
		{"GET", "/api/v1/organizations/nope", "", 404, "org"},
		{"GET", "/api/v1/organizations/nope/excess-servers", "", 404, "org"},
		{"POST", "/api/v1/organizations/nope/deployments/check", `{"requirements":{"cpu":1}}`, 404, "org"},
		{"POST", "/api/v1/organizations/acme/deployments/check", `{"requirements":{"memory":"12 parsecs"}}`, 400, "requirements.memory"},
		{"POST", "/api/v1/organizations/acme/deployments/check", `{"requirements":{"cpu":-1}}`, 400, "requirements.cpu"},
		{"POST", "/api/v1/organizations/acme/deployments/check", `{"requirements":{"gpu":1}}`, 400, "requirements.gpu"},
		{"POST", "/api/v1/organizations/acme/deployments/check", `{}`, 400, "requirements"},
		{"POST", "/api/v1/organizations/acme/deployments/check", `{"requirements":{},"new_application":"yes"}`, 400, "new_application"},
		{"POST", "/api/v1/organizations/acme/deployments/check", `{"requirements":{},"organization":"x"}`, 400, "organization"},
		{"POST", "/api/v1/organizations/acme/deployments/check", `[`, 400, ""},
	} {
		status, b, _ := e.do(c.method, c.path, c.body)
		if status != c.status {
			t.Errorf("%s %s %s: %d %s, want %d", c.method, c.path, c.body, status, b, c.status)
			continue
		}
		if got := apiError(t, b); got.Field != c.field {
			t.Errorf("%s %s %s: field %q (%s), want %q", c.method, c.path, c.body, got.Field, got.Message, c.field)
		}
	}
	// Prometheus unreachable: 503, not a guess.
	e.fleet.fail(fmt.Errorf("connection refused"))
	if status, b, _ := e.do("GET", "/api/v1/organizations/acme", ""); status != 503 {
		t.Errorf("source down: %d %s", status, b)
	}
}

// TestOrganizationsOpenAPI: every quota resource is documented, and real
// answers validate against the schemas (whose fields TestOpenAPISchemasMatchTypes
// checks against the Go types).
func TestOrganizationsOpenAPI(t *testing.T) {
	doc := openAPIDoc(t)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	var resources []string
	for _, r := range schemas["QuotaResource"].(map[string]any)["enum"].([]any) {
		resources = append(resources, r.(string))
	}
	for _, r := range quota.AllResources {
		if !slices.Contains(resources, string(r)) {
			t.Errorf("resource %s not in the QuotaResource schema", r)
		}
	}

	e := newQuotaEnv(t, quotaTestPolicy)
	for _, c := range []struct {
		method, path, docPath, body string
		status                      int
	}{
		{"GET", "/api/v1/organizations", "/organizations", "", 200},
		{"GET", "/api/v1/organizations/acme", "/organizations/{org}", "", 200},
		{"GET", "/api/v1/organizations/trial", "/organizations/{org}", "", 200},
		{"GET", "/api/v1/organizations/nope", "/organizations/{org}", "", 404},
		{"POST", "/api/v1/organizations/acme/deployments/check", "/organizations/{org}/deployments/check", `{"requirements":{"cpu":1,"memory":"1g"},"new_application":true}`, 200},
		{"POST", "/api/v1/organizations/acme/deployments/check", "/organizations/{org}/deployments/check", `{"requirements":{"cpu":10,"memory":"10g"}}`, 200},
		{"POST", "/api/v1/organizations/acme/deployments/check", "/organizations/{org}/deployments/check", `{"requirements":{"cpu":"x"}}`, 400},
		{"GET", "/api/v1/organizations/acme/excess-servers", "/organizations/{org}/excess-servers", "", 200},
		{"GET", "/api/v1/organizations/globex/excess-servers", "/organizations/{org}/excess-servers", "", 200},
		{"POST", "/api/v1/placements", "/placements", `{"requirements":{"cpu":1,"memory":"3g"},"organization":"acme"}`, 403},
	} {
		status, b, _ := e.do(c.method, c.path, c.body)
		if status != c.status {
			t.Fatalf("%s %s: %d %s", c.method, c.path, status, b)
		}
		checkSchema(t, c.method, c.docPath, status, b)
	}
}

// liveFleet: acme on three app servers, globex on one, a build server
// without organization. acme runs application a1 (and a preview of it),
// a2 in a container without limits, a stopped a3 and an unmanaged proxy;
// the servers are large so that only the quota limits the placements.
func liveFleet() fleetsim.Spec {
	const gib = 1 << 30
	srv := func(name, org string, containers ...fleetsim.ContainerSpec) fleetsim.ServerSpec {
		return fleetsim.ServerSpec{Name: name, Role: "app", Organization: org, Cores: 32, MemoryBytes: 128 * gib, MemoryUsedBytes: 8 * gib,
			DiskBytes: 500 * gib, DiskUsedBytes: 100 * gib, CPUBusy: 0.1, Connections: 10, Containers: containers}
	}
	app := func(name, appID string, cpu, mem float64) fleetsim.ContainerSpec {
		return fleetsim.ContainerSpec{Name: name, Image: name + ":1", ApplicationID: appID, Managed: true, Role: "app",
			CPULimitCores: cpu, MemoryLimitBytes: mem, CPUUsageCores: 0.05, MemoryWorkingSetBytes: 50 << 20}
	}
	preview := app("a1-pr-7", "a1", 0.5, 1*gib)
	preview.PullRequest = "7"
	stopped := app("a3", "a3", 4, 16*gib)
	stopped.State = "exited"
	proxy := fleetsim.ContainerSpec{Name: "coolify-proxy", Image: "traefik:3", Role: "infra", CPUUsageCores: 0.01, MemoryWorkingSetBytes: 30 << 20}
	build := srv("build-1", "")
	build.Role = "build"
	return fleetsim.Spec{Seed: 7, Servers: []fleetsim.ServerSpec{
		srv("acme-1", "acme", app("a1", "a1", 1, 2*gib), preview, app("a2", "a2", 0, 0), proxy, stopped),
		srv("acme-2", "acme", app("a2-worker", "a2", 2, 4.5*gib)),
		srv("acme-3", "acme"),
		srv("globex-1", "globex", app("g1", "g1", 1, 1*gib)),
		build,
	}}
}

// declaredUsage is what the fleet spec says an organization uses, with
// the default policy's charge for unlimited containers.
func declaredUsage(spec fleetsim.Spec, org string, p *policy.Policy) quota.Usage {
	var u quota.Usage
	apps := map[string]bool{}
	for _, s := range spec.Servers {
		if s.Organization != org {
			continue
		}
		u.Servers++
		for _, c := range s.Containers {
			if !c.Managed || (c.State != "" && c.State != "running") {
				continue
			}
			apps[c.ApplicationID] = true
			cpu, mem := c.CPULimitCores, int64(c.MemoryLimitBytes)
			if cpu == 0 {
				cpu = float64(p.Fit.DefaultRequest.CPU)
			}
			if mem == 0 {
				mem = int64(p.Fit.DefaultRequest.Memory)
			}
			u.CPUCores += cpu
			u.MemoryBytes += mem
		}
	}
	u.Applications = len(apps)
	return u
}

// TestIntegrationOrganizationsFleetsim runs the quota endpoints over a
// simulated fleet scraped by the embedded Prometheus with the shipped
// rules: usage as the fleet declares it, can-deploy answers, the 403 of
// POST /placements, 20 concurrent reserving placements against room for
// 5, excess servers after a policy reload, and a bad quota file refused.
func TestIntegrationOrganizationsFleetsim(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	spec := liveFleet()
	fleet, err := fleetsim.Start(ctx, spec, fleetsim.ListenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	dir := t.TempDir()
	sdPath := filepath.Join(dir, "fleet.json")
	if err := fleet.WriteFileSD(sdPath); err != nil {
		t.Fatal(err)
	}
	promConfig := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promConfig, []byte(fleetsim.ScrapeConfig("fleet", sdPath, time.Second)), 0o600); err != nil {
		t.Fatal(err)
	}

	// acme declares 8 GiB (a1 2 GiB + preview 1 GiB + a2-worker 4.5 GiB +
	// a2 without a limit at 512 MiB): 13 GiB leaves room for five 1 GiB
	// deployments.
	policyPath := filepath.Join(dir, "policy.yml")
	writePolicy := func(s string) {
		t.Helper()
		if err := os.WriteFile(policyPath, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writePolicy("quotas:\n  organizations:\n    acme: {max_servers: 3, max_applications: 3, max_cpu_cores: 100, max_memory_gb: 13}\n")
	policies, err := policy.NewStore(policyPath)
	if err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	logger := slog.New(slog.DiscardHandler)
	src, err := promsource.Open(promsource.Config{
		Embedded: embedded.Config{StoragePath: filepath.Join(dir, "tsdb"), ConfigFile: promConfig,
			RuleFiles: []string{shortWindowRules(t)}},
		SnapshotTTL: 200 * time.Millisecond,
	}, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	store, err := reservation.Open(filepath.Join(dir, "reservations"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg.MustRegister(quota.NewCollector(src.Snapshots, policies, store.List, logger))
	a, err := New(Options{
		Snapshots:  src.Snapshots,
		Policy:     policies,
		Placer:     schedule.NewPlacer(policies, store, quota.Admission()),
		Ready:      src.Ready,
		Reloaders:  []Reloader{{Name: "placement policy", Reload: policies.Reload}},
		Registerer: reg,
		Gatherer:   reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(checkAnswers(t, a))
	defer srv.Close()
	e := &testEnv{t: t, url: srv.URL, api: a, reg: reg}

	// Wait for every server to be fresh with every signal (placements
	// need them) and for the organization rules to have run.
	p := policies.Policy()
	wantAcme := declaredUsage(spec, "acme", p)
	wantGlobex := declaredUsage(spec, "globex", p)
	if wantAcme != (quota.Usage{Servers: 3, Applications: 2, CPUCores: 4, MemoryBytes: 8 << 30}) {
		t.Fatalf("fleet spec changed: acme declares %+v", wantAcme)
	}
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for {
		var servers ServerList
		var acme quota.Status
		status, b, _ := e.do("GET", "/api/v1/servers", "")
		ready := status == 200 && json.Unmarshal(b, &servers) == nil && len(servers.Servers) == len(spec.Servers)
		for _, s := range servers.Servers {
			if s.Freshness.State != "fresh" || len(s.Missing) > 0 || s.Headroom == nil || s.Role == "app" && s.Headroom.CPU < 2 {
				ready = false
				last = fmt.Sprintf("server %s %s missing %v headroom %+v", s.Name, s.Freshness.State, s.Missing, s.Headroom)
			}
		}
		if ready {
			status, b, _ = e.do("GET", "/api/v1/organizations/acme", "")
			ready = status == 200 && json.Unmarshal(b, &acme) == nil && acme.Usage == wantAcme
			last = fmt.Sprintf("acme: %d %s", status, b)
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet not ready: %s", last)
		}
		time.Sleep(500 * time.Millisecond)
	}

	var acme, globex quota.Status
	e.json("GET", "/api/v1/organizations/acme", "", 200, &acme)
	e.json("GET", "/api/v1/organizations/globex", "", 200, &globex)
	if globex.Usage != wantGlobex || !globex.Compliant {
		t.Errorf("globex %+v, want usage %+v", globex, wantGlobex)
	}
	b := acme.Breakdown
	if !slices.Equal(b.Servers, []string{"acme-1", "acme-2", "acme-3"}) || !slices.Equal(b.ApplicationIDs, []string{"a1", "a2"}) ||
		b.Containers.UnlimitedCPU != 1 || b.Containers.UnlimitedMemory != 1 || b.Containers.DefaultMemoryBytes != 512<<20 || !acme.Compliant {
		t.Errorf("acme breakdown %+v", acme)
	}
	// Disk used on acme's servers: 3 × 100 GiB declared.
	if got := float64(b.Disk.UsedBytes); math.Abs(got-300*(1<<30)) > 1 {
		t.Errorf("acme disk used %v", got)
	}

	// Can deploy: one that fits, one over memory (Kubernetes' words).
	var check quota.Check
	e.json("POST", "/api/v1/organizations/acme/deployments/check", `{"requirements":{"cpu":1,"memory":"2g"},"new_application":true}`, 200, &check)
	if !check.Allowed || check.Projected.Applications != 3 || check.Projected.MemoryBytes != 10<<30 {
		t.Errorf("fitting deployment: %+v", check)
	}
	const overMsg = "exceeded quota: acme, requested: memory=6Gi, used: memory=8Gi, limited: memory=13Gi"
	e.json("POST", "/api/v1/organizations/acme/deployments/check", `{"requirements":{"cpu":1,"memory":"6g"}}`, 200, &check)
	if check.Allowed || !slices.Equal(check.Messages, []string{overMsg}) {
		t.Errorf("over memory: %+v, want %q", check, overMsg)
	}
	status, body, _ := e.do("POST", "/api/v1/placements", `{"requirements":{"cpu":1,"memory":"6g"},"organization":"acme","application_id":"a1","reserve":true}`)
	if status != 403 {
		t.Fatalf("placement over memory: %d %s", status, body)
	}
	if got := apiError(t, body); got.Code != CodeQuotaExceeded || got.Message != overMsg {
		t.Errorf("placement over memory: %+v, want %q", got, overMsg)
	}

	// 20 concurrent reserving placements, room for 5.
	var (
		wg                     sync.WaitGroup
		mu                     sync.Mutex
		placed, refused, other int
	)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"requirements":{"cpu":"0.1","memory":"1g"},"organization":"acme","application_id":"a1","reserve":true,"idempotency_key":"burst-%d"}`, i)
			resp, err := http.Post(srv.URL+"/api/v1/placements", "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			switch resp.StatusCode {
			case 200:
				var d PlacementResponse
				if json.Unmarshal(b, &d) == nil && d.Placed && d.Reservation != nil {
					placed++
				} else {
					other++
					t.Errorf("200 without a reservation: %s", b)
				}
			case 403:
				refused++
			default:
				other++
				t.Errorf("burst placement: %d %s", resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	if placed != 5 || refused != 15 || other != 0 {
		t.Fatalf("burst: %d placed, %d refused, %d other; want 5 and 15", placed, refused, other)
	}
	e.json("GET", "/api/v1/organizations/acme", "", 200, &acme)
	if acme.Usage.MemoryBytes != 13<<30 || acme.Breakdown.Reserved.Reservations != 5 || !acme.Compliant {
		t.Errorf("after the burst: usage %+v, reserved %+v", acme.Usage, acme.Breakdown.Reserved)
	}
	if v := metricValue(t, reg, "berth_organization_usage", map[string]string{"organization": "acme", "resource": "memory_bytes"}); v != 13<<30 {
		t.Errorf("berth_organization_usage{acme,memory_bytes} = %v, want %v", v, 13<<30)
	}

	// Lower max_servers and reload: the excess servers are listed.
	var excess quota.Excess
	e.json("GET", "/api/v1/organizations/acme/excess-servers", "", 200, &excess)
	if len(excess.Excess) != 0 || excess.Servers != 3 {
		t.Errorf("excess before: %+v", excess)
	}
	writePolicy("quotas:\n  organizations:\n    acme: {max_servers: 1, max_applications: 3, max_cpu_cores: 100, max_memory_gb: 13}\n")
	if status, b, _ := e.do("POST", "/-/reload", ""); status != 200 {
		t.Fatalf("reload: %d %s", status, b)
	}
	e.json("GET", "/api/v1/organizations/acme/excess-servers", "", 200, &excess)
	if !slices.Equal(excess.Keep, []string{"acme-1"}) || !slices.Equal(excess.Excess, []string{"acme-2", "acme-3"}) {
		t.Errorf("excess after lowering max_servers to 1: %+v", excess)
	}
	e.json("GET", "/api/v1/organizations/acme", "", 200, &acme)
	if acme.Compliant || len(acme.Violations) != 1 || acme.Violations[0].Message != "exceeded quota: acme, used: servers=3, limited: servers=1" {
		t.Errorf("compliance after lowering max_servers: %+v", acme.Violations)
	}

	// An invalid quota file is refused; the old policy stays.
	writePolicy("quotas:\n  organizations:\n    acme: {max_servers: -1}\n")
	status, body, _ = e.do("POST", "/-/reload", "")
	if status != 422 {
		t.Fatalf("bad quota reload: %d %s, want 422", status, body)
	}
	if got := apiError(t, body); got.Code != CodeInvalidArgument || got.Field != "quotas.organizations.acme.max_servers" {
		t.Errorf("bad quota reload: %+v", got)
	}
	e.json("GET", "/api/v1/organizations/acme/excess-servers", "", 200, &excess)
	if excess.MaxServers == nil || *excess.MaxServers != 1 || len(excess.Excess) != 2 {
		t.Errorf("after a refused reload: %+v, want the old max_servers 1", excess)
	}
}

// shortWindowRules writes the shipped rules with their 5m and 15m windows
// shrunk to 5s and returns a glob of them. rate() divides by the whole
// window, so over a window that holds a few seconds of samples it reads far
// too low (idle CPU near 0: every server looks busy) until the window has
// filled, and max_over_time keeps that for 15 minutes; the expressions are
// otherwise exactly the shipped ones.
func shortWindowRules(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := berthrules.WriteTo(dir, strings.NewReplacer("[5m]", "[5s]", "[15m]", "[5s]").Replace); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "*.rules.yml")
}

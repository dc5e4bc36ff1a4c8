package api

import (
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/quota"
	"github.com/berth-dev/berth/placement/reservation"
	"github.com/berth-dev/berth/placement/schedule"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-dev/berth/placement"
)

// fakeFleet is the input side of the API under test: a SnapshotSource
// serving a fixed fleet, or an error as an unreachable Prometheus does.
type fakeFleet struct {
	mu   sync.Mutex
	snap *placement.Snapshot
	err  error
}

func (f *fakeFleet) Snapshot(context.Context) (*placement.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return f.snap, nil
}

func (f *fakeFleet) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

const gibF = float64(1 << 30)

// server builds a fresh server with cores CPUs, memGiB of memory and
// diskGiB of disk, lightly used.
func server(name, role, org string, cores, memGiB, diskGiB float64, age time.Duration, now time.Time) *placement.ServerState {
	return &placement.ServerState{
		Name: name, Role: role, Organization: org,
		LastSeen: now.Add(-age), Age: age,
		CPU:        placement.CPUState{Cores: cores, Utilisation: 0.10, PeakUtilisation: 0.20, Load1PerCPU: 0.5, Load5PerCPU: 0.25, Load15PerCPU: 0.125},
		Memory:     placement.MemoryState{TotalBytes: memGiB * gibF, AvailableBytes: memGiB * gibF * 0.75, PeakUsedBytes: memGiB * gibF * 0.30},
		Disk:       placement.DiskState{SizeBytes: diskGiB * gibF, AvailableBytes: diskGiB * gibF * 0.60, ThresholdRatio: 0.80},
		Network:    placement.NetworkState{ReceiveBytesTotal: 1e9, TransmitBytesTotal: 2e9, ReceiveBytesPerSecond: 1000, TransmitBytesPerSecond: 2000, EstablishedConnections: 42},
		Containers: placement.ContainerState{Running: 3, LimitedCPUCores: 1, LimitedMemoryBytes: gibF, UnlimitedCPU: 1, UnlimitedMemory: 1},
	}
}

// testFleet: two fresh app servers, a build server, a stale app server.
func testFleet() *placement.Snapshot {
	now := time.Now()
	servers := []*placement.ServerState{
		server("app-1", "app", "acme", 8, 16, 100, 10*time.Second, now),
		server("app-2", "app", "globex", 4, 8, 50, 5*time.Second, now),
		server("build-1", "build", "acme", 16, 32, 200, 5*time.Second, now),
		server("app-stale", "app", "acme", 8, 16, 100, 5*time.Minute, now),
	}
	snap := &placement.Snapshot{Taken: now, Servers: map[string]*placement.ServerState{}}
	for _, s := range servers {
		snap.Servers[s.Name] = s
	}
	return snap
}

type testEnv struct {
	t       testing.TB
	url     string
	fleet   *fakeFleet
	api     *API
	reg     *prometheus.Registry
	token   string
	dataDir string

	admissions []schedule.Admission
}

type envOption func(*Options, *testEnv)

// withAdmission adds an admission check to the Placer (set after options).
func withAdmission(a schedule.Admission) envOption {
	return func(_ *Options, e *testEnv) { e.admissions = append(e.admissions, a) }
}

func withTokens(tokens ...string) envOption {
	return func(o *Options, e *testEnv) {
		path := filepath.Join(e.t.TempDir(), "tokens")
		if err := os.WriteFile(path, []byte("# api clients\n"+strings.Join(tokens, "\n")+"\n"), 0o600); err != nil {
			e.t.Fatal(err)
		}
		tok, err := LoadTokens(path)
		if err != nil {
			e.t.Fatal(err)
		}
		o.Tokens = tok
	}
}

func withPolicy(ps PolicySource) envOption {
	return func(o *Options, _ *testEnv) { o.Policy = ps }
}

func newTestEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	e := &testEnv{t: t, fleet: &fakeFleet{snap: testFleet()}, reg: prometheus.NewRegistry(), dataDir: t.TempDir()}
	store, err := reservation.Open(e.dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	o := Options{
		Snapshots:  e.fleet,
		Policy:     policy.NewStaticStore(policy.Default()),
		Registerer: e.reg,
		Gatherer:   e.reg,
	}
	for _, opt := range opts {
		opt(&o, e)
	}
	if store != nil {
		o.Placer = schedule.NewPlacer(o.Policy, store, e.admissions...)
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.api = a
	srv := httptest.NewServer(checkAnswers(t, a))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// do sends a request and returns the status and body.
func (e *testEnv) do(method, path, body string, header ...string) (int, []byte, http.Header) {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	// Add, not Set: a test may send a header twice (two Authorization
	// headers, basic auth and a bearer token).
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// json sends a request, checks the status and decodes the answer into out.
func (e *testEnv) json(method, path, body string, wantStatus int, out any) {
	e.t.Helper()
	status, b, _ := e.do(method, path, body)
	if status != wantStatus {
		e.t.Fatalf("%s %s %s: status %d, want %d; body: %s", method, path, body, status, wantStatus, b)
	}
	if out != nil {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
}

// apiError decodes an error answer strictly: exactly the documented shape.
func apiError(t *testing.T, b []byte) Error {
	t.Helper()
	var body struct {
		Error *Error `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.Error == nil {
		t.Fatalf("not an error body (%v): %s", err, b)
	}
	if body.Error.Code == "" || body.Error.Message == "" {
		t.Fatalf("error without code or message: %s", b)
	}
	return *body.Error
}

func TestServers(t *testing.T) {
	e := newTestEnv(t)
	var list ServerList
	e.json("GET", "/api/v1/servers", "", 200, &list)
	var names []string
	for _, s := range list.Servers {
		names = append(names, s.Name)
	}
	if got, want := strings.Join(names, ","), "app-1,app-2,app-stale,build-1"; got != want {
		t.Fatalf("servers %s, want %s (sorted by name)", got, want)
	}

	var one ServerView
	e.json("GET", "/api/v1/servers/app-1", "", 200, &one)
	if one.Role != "app" || one.Organization != "acme" || one.Freshness.State != placement.Fresh {
		t.Errorf("identity/freshness: %+v", one)
	}
	if one.Freshness.AgeSeconds == nil || *one.Freshness.AgeSeconds != 10 {
		t.Errorf("age_seconds %v, want 10", one.Freshness.AgeSeconds)
	}
	if one.Memory.TotalMB != 16*1024 || one.Memory.AvailableMB != 12*1024 || one.Memory.UsedMB != 4*1024 || one.Memory.UsagePercent != 25 {
		t.Errorf("memory %+v", one.Memory)
	}
	if one.Disk.TotalGB != 100 || one.Disk.AvailableGB != 60 || one.Disk.UsedGB != 40 || one.Disk.UsagePercent != 40 || one.Disk.ThresholdPercent != 80 {
		t.Errorf("disk %+v", one.Disk)
	}
	if one.CPU.CoreCount != 8 || one.CPU.UsagePercent != 10 || jsonString(t, one.CPU.LoadAverage) != "[4,2,1]" {
		t.Errorf("cpu %+v", one.CPU)
	}
	if one.Network.Connections != 42 || one.Network.RxBytes != 1e9 || one.Network.TxBytes != 2e9 {
		t.Errorf("network %+v", one.Network)
	}
	// Allocated: 1 core of limits + 1 unlimited container at the default
	// 0.5; 1 GiB + 512 MiB.
	if one.Allocated.CPU != 1.5 || one.Allocated.Memory != 1<<30+512<<20 {
		t.Errorf("allocated %+v", one.Allocated)
	}
	// Headroom: cpu 8×0.9 − max(0.2×8, 1.5) = 5.6 cores.
	if one.Headroom == nil || one.Headroom.CPU != 5.6 {
		t.Errorf("headroom %+v, want cpu 5.6", one.Headroom)
	}

	var stale ServerView
	e.json("GET", "/api/v1/servers/app-stale", "", 200, &stale)
	if stale.Freshness.State != placement.Stale || stale.Headroom != nil {
		t.Errorf("stale server: freshness %+v headroom %+v, want stale and no headroom", stale.Freshness, stale.Headroom)
	}

	var builds ServerList
	e.json("GET", "/api/v1/servers?role=build", "", 200, &builds)
	if len(builds.Servers) != 1 || builds.Servers[0].Name != "build-1" {
		t.Errorf("role=build: %+v", builds.Servers)
	}
	var globex ServerList
	e.json("GET", "/api/v1/servers?organization=globex", "", 200, &globex)
	if len(globex.Servers) != 1 || globex.Servers[0].Name != "app-2" {
		t.Errorf("organization=globex: %+v", globex.Servers)
	}
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCheck(t *testing.T) {
	e := newTestEnv(t)
	var ok CheckResponse
	e.json("POST", "/api/v1/placements/check", `{"server":"app-1","requirements":{"cpu":"1.5","memory":"512m","disk":"1g"}}`, 200, &ok)
	if !ok.Fits || len(ok.Reasons) != 0 || len(ok.Dimensions) != 3 || ok.Summary != "app-1 can take this deployment" {
		t.Errorf("small check: %+v", ok)
	}
	if d := ok.Dimension(placement.DimensionMemory); d == nil || d.Requested != 512<<20 || d.Capacity != 16*gibF {
		t.Errorf("memory dimension %+v", d)
	}

	var no CheckResponse
	e.json("POST", "/api/v1/placements/check", `{"server":"app-2","requirements":{"memory":"64g","cpu":100}}`, 200, &no)
	if no.Fits || jsonString(t, no.Reasons) != `["insufficient_cpu","insufficient_memory"]` {
		t.Errorf("big check: %+v", no)
	}
	if no.Summary != "app-2 cannot take this deployment: insufficient cpu, insufficient memory" {
		t.Errorf("summary %q", no.Summary)
	}

	var build CheckResponse
	e.json("POST", "/api/v1/placements/check", `{"server":"build-1","requirements":{"cpu":1}}`, 200, &build)
	if build.Fits || jsonString(t, build.Reasons) != `["wrong_role"]` {
		t.Errorf("deployment on a build server: %+v", build)
	}
	var stale CheckResponse
	e.json("POST", "/api/v1/placements/check", `{"server":"app-stale","requirements":{"cpu":1}}`, 200, &stale)
	if stale.Fits || jsonString(t, stale.Reasons) != `["metrics_stale"]` {
		t.Errorf("stale server: %+v", stale)
	}
}

func TestPlacementAndReservations(t *testing.T) {
	e := newTestEnv(t)
	for range 20 {
		var d PlacementResponse
		e.json("POST", "/api/v1/placements", `{"requirements":{"cpu":0.5,"memory":"256m"}}`, 200, &d)
		if !d.Placed || (d.Chosen != "app-1" && d.Chosen != "app-2") || d.Reservation != nil {
			t.Fatalf("placement without reserve: %+v", d)
		}
		if d.Considered != 4 || len(d.Rejected) != 2 || !strings.HasPrefix(d.Summary, "2/4 servers can take this deployment: ") {
			t.Fatalf("build and stale servers must be rejected: %+v", d)
		}
	}

	body := `{"requirements":{"cpu":"1","memory":"1g"},"reserve":true,"idempotency_key":"deploy-42","ttl":"5m","organization":"acme","candidates":["app-1"]}`
	var d PlacementResponse
	e.json("POST", "/api/v1/placements", body, 200, &d)
	if !d.Placed || d.Chosen != "app-1" || d.Reservation == nil || d.Reservation.Server != "app-1" || d.Replayed {
		t.Fatalf("reserving placement: %+v", d)
	}
	if ttl := d.Reservation.ExpiresAt.Sub(d.Reservation.CreatedAt); ttl != 5*time.Minute {
		t.Errorf("reservation ttl %s, want 5m", ttl)
	}
	id := d.Reservation.ID

	var again PlacementResponse
	e.json("POST", "/api/v1/placements", body, 200, &again)
	if !again.Replayed || again.Reservation == nil || again.Reservation.ID != id {
		t.Fatalf("idempotent retry: %+v, want reservation %s replayed", again, id)
	}
	status, b, _ := e.do("POST", "/api/v1/placements", strings.Replace(body, `"1g"`, `"2g"`, 1))
	if status != 409 || apiError(t, b).Field != "idempotency_key" {
		t.Fatalf("same key, other request: %d %s", status, b)
	}

	var list ReservationList
	e.json("GET", "/api/v1/reservations", "", 200, &list)
	if len(list.Reservations) != 1 || list.Reservations[0].ID != id {
		t.Fatalf("reservations %+v", list)
	}
	e.json("GET", "/api/v1/reservations?server=app-2", "", 200, &list)
	if len(list.Reservations) != 0 {
		t.Fatalf("filtered reservations %+v", list)
	}

	// The reservation counts: the server view shows it and headroom shrinks.
	var v ServerView
	e.json("GET", "/api/v1/servers/app-1", "", 200, &v)
	if v.Reserved.CPU != 1 || v.Reserved.Memory != 1<<30 || v.Headroom.CPU != 4.6 {
		t.Errorf("server view after reserving: reserved %+v headroom %+v", v.Reserved, v.Headroom)
	}
	if got := metricValue(t, e.reg, "berth_placement_reservations", map[string]string{"server": "app-1", "kind": "deployment", "state": "active"}); got != 1 {
		t.Errorf("berth_placement_reservations = %v, want 1", got)
	}

	var confirmed placement.Reservation
	e.json("POST", "/api/v1/reservations/"+id+"/confirm", "", 200, &confirmed)
	if confirmed.ConfirmedAt == nil {
		t.Errorf("confirm: %+v", confirmed)
	}
	var released placement.Reservation
	e.json("DELETE", "/api/v1/reservations/"+id, "", 200, &released)
	if released.ID != id {
		t.Errorf("release: %+v", released)
	}
	for _, req := range [][2]string{{"DELETE", "/api/v1/reservations/" + id}, {"POST", "/api/v1/reservations/" + id + "/confirm"}} {
		status, b, _ := e.do(req[0], req[1], "")
		if status != 404 || apiError(t, b).Field != "id" {
			t.Errorf("%s %s after release: %d %s", req[0], req[1], status, b)
		}
	}
	if got := metricValue(t, e.reg, "berth_placement_decisions_total", map[string]string{"kind": "deployment", "outcome": "placed"}); got != 21 {
		t.Errorf("decisions placed = %v, want 21 (the replay is not a decision)", got)
	}
}

func TestPlacementNoFit(t *testing.T) {
	e := newTestEnv(t)
	var d PlacementResponse
	e.json("POST", "/api/v1/placements", `{"requirements":{"cpu":1000},"reserve":true}`, 200, &d)
	if d.Placed || d.Chosen != "" || d.Reservation != nil || len(d.Ranking) != 0 {
		t.Fatalf("1000 cores placed: %+v", d)
	}
	reasons := map[string]string{}
	for _, r := range d.Rejected {
		reasons[r.Server] = jsonString(t, r.Reasons)
	}
	want := map[string]string{"app-1": `["insufficient_cpu"]`, "app-2": `["insufficient_cpu"]`, "build-1": `["wrong_role"]`, "app-stale": `["metrics_stale"]`}
	if jsonString(t, reasons) != jsonString(t, want) {
		t.Errorf("rejections %v, want %v", reasons, want)
	}
	if d.Summary != "0/4 servers can take this deployment: 2 insufficient cpu, 1 metrics stale, 1 wrong role" {
		t.Errorf("summary %q", d.Summary)
	}
	if got := metricValue(t, e.reg, "berth_placement_decisions_total", map[string]string{"kind": "deployment", "outcome": "no_fit"}); got != 1 {
		t.Errorf("no_fit decisions = %v", got)
	}
	if got := metricValue(t, e.reg, "berth_placement_rejections_total", map[string]string{"kind": "deployment", "reason": "insufficient_cpu"}); got != 2 {
		t.Errorf("insufficient_cpu rejections = %v", got)
	}
}

func TestUnavailable(t *testing.T) {
	e := newTestEnv(t)
	e.fleet.fail(errors.New("dial tcp 127.0.0.1:9090: connection refused"))
	for _, req := range [][3]string{
		{"GET", "/api/v1/servers", ""},
		{"GET", "/api/v1/servers/app-1", ""},
		{"POST", "/api/v1/placements/check", `{"server":"app-1","requirements":{"cpu":1}}`},
		{"POST", "/api/v1/placements", `{"requirements":{"cpu":1},"reserve":true}`},
	} {
		status, b, _ := e.do(req[0], req[1], req[2])
		if status != 503 {
			t.Errorf("%s %s: status %d, want 503; %s", req[0], req[1], status, b)
			continue
		}
		if err := apiError(t, b); err.Code != CodeUnavailable || !strings.Contains(err.Message, "connection refused") {
			t.Errorf("%s %s: %+v", req[0], req[1], err)
		}
	}
	if status, b, _ := e.do("GET", "/-/ready", ""); status != 503 {
		t.Errorf("/-/ready: %d %s", status, b)
	}
	var list ReservationList
	e.json("GET", "/api/v1/reservations", "", 200, &list)
	if len(list.Reservations) != 0 {
		t.Errorf("no reservation may be made while the source is down: %+v", list)
	}
}

// metricValue is the value of the series of family name matching labels, 0
// when the family has no such series; a family that is not registered at
// all (a typo) fails the test instead of reading as 0.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
		return 0 // the family exists; no series with these labels yet
	}
	t.Fatalf("metric family %s is not registered", name)
	return 0
}

func TestPlacementAdmissionRefused(t *testing.T) {
	e := newTestEnv(t, withAdmission(schedule.AdmissionFunc(func(in *schedule.AdmissionInput) error {
		if in.Request.Organization == "acme" {
			return &quota.ExceededError{Organization: "acme", Exceeded: []quota.Exceeded{{
				Resource: quota.MemoryBytes, Requested: 1 << 30, Used: 31 << 30, Limit: 32 << 30,
				Message: "exceeded quota: acme, requested: memory=1Gi, used: memory=31Gi, limited: memory=32Gi",
			}}}
		}
		return nil
	})))
	status, b, _ := e.do("POST", "/api/v1/placements", `{"requirements":{"memory":"1g"},"organization":"acme","reserve":true}`)
	if status != 403 {
		t.Fatalf("status %d: %s", status, b)
	}
	got := apiError(t, b)
	if got.Code != CodeQuotaExceeded || !strings.HasPrefix(got.Message, "exceeded quota: acme") || got.Details == nil {
		t.Errorf("refusal %+v", got)
	}
	var list ReservationList
	e.json("GET", "/api/v1/reservations", "", 200, &list)
	if len(list.Reservations) != 0 {
		t.Errorf("a refused placement reserved: %+v", list)
	}
	var ok PlacementResponse
	e.json("POST", "/api/v1/placements", `{"requirements":{"memory":"1g"},"organization":"globex","reserve":true}`, 200, &ok)
	if !ok.Placed || ok.Reservation == nil {
		t.Errorf("another organization: %+v", ok)
	}
}

package api

import (
	"fmt"

	"github.com/berth-dev/berth/placement/build"
	"github.com/berth-dev/berth/placement/policy"

	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/promsource"
)

// buildFleet: three fresh build servers with different loads and an app
// server.
func buildFleet() *placement.Snapshot {
	now := time.Now()
	snap := testFleet()
	delete(snap.Servers, "build-1")
	for _, b := range []struct {
		name     string
		cpu, mem float64
	}{{"build-a", 0.70, 0.50}, {"build-b", 0.10, 0.20}, {"build-c", 0.40, 0.40}} {
		s := server(b.name, "build", "", 8, 16, 200, 5*time.Second, now)
		s.CPU.Utilisation, s.CPU.PeakUtilisation = b.cpu, b.cpu
		s.Memory.AvailableBytes = 16 * gibF * (1 - b.mem)
		s.Memory.PeakUsedBytes = 16 * gibF * b.mem
		snap.Servers[b.name] = s
	}
	return snap
}

func TestBuildEndpoints(t *testing.T) {
	e := newTestEnv(t)
	e.fleet.snap = buildFleet()

	// Build servers: only role=build, sorted, with the seed's score.
	status, b, _ := e.do("GET", "/api/v1/build-servers", "")
	if status != 200 {
		t.Fatalf("GET /build-servers: %d %s", status, b)
	}
	checkSchema(t, "GET", "/build-servers", status, b)
	var list BuildServerList
	e.json("GET", "/api/v1/build-servers", "", 200, &list)
	var names []string
	for _, l := range list.Servers {
		names = append(names, l.Server)
	}
	if !slices.Equal(names, []string{"build-a", "build-b", "build-c"}) {
		t.Fatalf("build servers %v", names)
	}
	if b := list.Servers[1]; b.Score != 10*0.4+20*0.3 || b.ConcurrentBuilds != 2 || b.FreeSlots != 2 || b.Freshness != placement.Fresh {
		t.Errorf("build-b %+v", b)
	}
	for path, code := range map[string]int{"/api/v1/build-servers/build-b": 200, "/api/v1/build-servers/app-1": 404, "/api/v1/build-servers/nope": 404} {
		status, b, _ := e.do("GET", path, "")
		if status != code {
			t.Errorf("GET %s: %d, want %d: %s", path, status, code, b)
		}
		checkSchema(t, "GET", "/build-servers/{server}", status, b)
	}

	// Estimate.
	status, b, _ = e.do("POST", "/api/v1/builds/estimate", `{"build_pack":"dockerfile","profile":"docker_build","repository_size_mb":250}`)
	checkSchema(t, "POST", "/builds/estimate", status, b)
	var est build.Estimate
	if err := json.Unmarshal(b, &est); err != nil || status != 200 {
		t.Fatal(status, string(b))
	}
	if est.Source != "profile" || est.Memory != 6<<30 || est.DurationSeconds != 1200 || len(est.Adjustments) != 2 {
		t.Errorf("estimate %+v", est)
	}

	// Placement: least loaded, reserved as queued.
	place := func(body string) BuildPlacementResponse {
		t.Helper()
		status, b, _ := e.do("POST", "/api/v1/builds/placements", body)
		if status != 200 {
			t.Fatalf("POST /builds/placements %s: %d %s", body, status, b)
		}
		checkSchema(t, "POST", "/builds/placements", status, b)
		var out BuildPlacementResponse
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := place(`{"application_id":"42","build_pack":"nixpacks","reserve":true,"idempotency_key":"deploy-1"}`)
	if !first.Placed || first.Outcome != build.Placed || first.Chosen != "build-b" || first.Reservation == nil ||
		first.Reservation.State != placement.StateQueued || first.Reservation.Resources.Memory != 2<<30 || first.Estimate.Profile != "node_application" {
		t.Fatalf("first placement %+v", first)
	}
	// A retry replays; the same key for something else is a conflict.
	again := place(`{"application_id":"42","build_pack":"nixpacks","reserve":true,"idempotency_key":"deploy-1"}`)
	if !again.Replayed || again.Reservation.ID != first.Reservation.ID || again.Chosen != "build-b" {
		t.Errorf("retry %+v", again)
	}
	if status, b, _ := e.do("POST", "/api/v1/builds/placements", `{"application_id":"43","reserve":true,"idempotency_key":"deploy-1"}`); status != 409 || apiError(t, b).Field != "idempotency_key" {
		t.Errorf("reused key: %d %s", status, b)
	}
	if got := metricValue(t, e.reg, "berth_build_queue_length", map[string]string{"server": "build-b"}); got != 1 {
		t.Errorf("queue length %v, want 1", got)
	}
	if got := metricValue(t, e.reg, "berth_build_concurrency_limit", map[string]string{"server": "build-a"}); got != 2 {
		t.Errorf("concurrency limit %v, want 2", got)
	}

	// Start and finish move the counts.
	load := func(server string) build.Load {
		var l build.Load
		e.json("GET", "/api/v1/build-servers/"+server, "", 200, &l)
		return l
	}
	if l := load("build-b"); l.QueuedBuilds != 1 || l.ActiveBuilds != 0 {
		t.Errorf("after placement: %+v", l)
	}
	id := first.Reservation.ID
	status, b, _ = e.do("POST", "/api/v1/builds/"+id+"/start", "")
	checkSchema(t, "POST", "/builds/{id}/start", status, b)
	var started placement.Reservation
	if err := json.Unmarshal(b, &started); err != nil || status != 200 || started.State != placement.StateActive || started.StartedAt == nil {
		t.Fatalf("start: %d %s", status, b)
	}
	// Renewed for twice the expected 5m (more than the default 10m TTL? equal).
	if ttl := started.ExpiresAt.Sub(*started.StartedAt); ttl != 10*time.Minute {
		t.Errorf("started build expires after %s, want 10m", ttl)
	}
	if l := load("build-b"); l.QueuedBuilds != 0 || l.ActiveBuilds != 1 || l.StartedReservations != 1 {
		t.Errorf("after start: %+v", l)
	}
	if status, _, _ := e.do("POST", "/api/v1/builds/"+id+"/start", ""); status != 409 {
		t.Errorf("second start: %d, want 409", status)
	}
	status, b, _ = e.do("POST", "/api/v1/builds/"+id+"/finish", "")
	checkSchema(t, "POST", "/builds/{id}/finish", status, b)
	var fin BuildFinishResponse
	if err := json.Unmarshal(b, &fin); err != nil || status != 200 || !fin.HistoryRecorded || fin.Reservation.ID != id {
		t.Fatalf("finish: %d %s", status, b)
	}
	if l := load("build-b"); l.QueuedBuilds != 0 || l.ActiveBuilds != 0 {
		t.Errorf("after finish: %+v", l)
	}
	if status, _, _ := e.do("POST", "/api/v1/builds/"+id+"/finish", ""); status != 404 {
		t.Errorf("second finish: %d, want 404", status)
	}
	if got := metricValue(t, e.reg, "berth_build_queue_length", map[string]string{"server": "build-b"}); got != 0 {
		t.Errorf("queue length after finish %v, want 0", got)
	}

	// A deployment reservation is not a build.
	var dep PlacementResponse
	e.json("POST", "/api/v1/placements", `{"requirements":{"cpu":1},"reserve":true}`, 200, &dep)
	for _, op := range []string{"start", "finish"} {
		if status, b, _ := e.do("POST", "/api/v1/builds/"+dep.Reservation.ID+"/"+op, ""); status != 409 {
			t.Errorf("%s of a deployment reservation: %d %s", op, status, b)
		}
	}

	// Fill every slot: 2 per server, 5 left after build-b's first is
	// gone; then the answer is "full" with a wait.
	var placed int
	for range 6 {
		if r := place(`{"reserve":true}`); r.Placed {
			placed++
		}
	}
	full := place(`{"reserve":true}`)
	if placed != 6 || full.Placed || full.Outcome != build.Full || full.Wait == nil || full.Reservation != nil {
		t.Fatalf("after %d placements: %+v", placed, full)
	}
	for _, r := range full.Rejected {
		if !slices.Equal(r.Reasons, []placement.Reason{placement.ReasonAtBuildCapacity}) {
			t.Errorf("%s rejected for %v", r.Server, r.Reasons)
		}
	}
	if got := metricValue(t, e.reg, "berth_placement_decisions_total", map[string]string{"kind": "build", "outcome": "no_fit"}); got != 1 {
		t.Errorf("build no_fit decisions %v", got)
	}
	if got := metricValue(t, e.reg, "berth_placement_rejections_total", map[string]string{"kind": "build", "reason": "at_build_capacity"}); got < 3 {
		t.Errorf("at_build_capacity rejections %v", got)
	}
}

func TestBuildPlacementWithoutBuildServers(t *testing.T) {
	e := newTestEnv(t)
	delete(e.fleet.snap.Servers, "build-1")
	var out BuildPlacementResponse
	e.json("POST", "/api/v1/builds/placements", `{"reserve":true}`, 200, &out)
	if out.Placed || !out.BuildOnDeploymentServer || out.Outcome != build.OnDeploymentServer || out.Reservation != nil {
		t.Errorf("no build server: %+v", out)
	}
	var list BuildServerList
	e.json("GET", "/api/v1/build-servers", "", 200, &list)
	if len(list.Servers) != 0 {
		t.Errorf("build servers %+v", list.Servers)
	}
}

func TestBuildBadInput(t *testing.T) {
	e := newTestEnv(t)
	const place, estimate = "/api/v1/builds/placements", "/api/v1/builds/estimate"
	var dep PlacementResponse
	e.json("POST", "/api/v1/placements", `{"requirements":{"cpu":1},"reserve":true}`, 200, &dep)
	var placed BuildPlacementResponse
	e.json("POST", place, `{"reserve":true}`, 200, &placed)
	start := "/api/v1/builds/" + placed.Reservation.ID + "/start"
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code, field              string
	}{
		{"empty body", "POST", place, ``, 400, CodeInvalidArgument, ""},
		{"malformed", "POST", place, `{"reserve":`, 400, CodeInvalidArgument, ""},
		{"unknown field", "POST", place, `{"priority":1}`, 400, CodeInvalidArgument, "priority"},
		{"application_id as number", "POST", place, `{"application_id":42}`, 400, CodeInvalidArgument, "application_id"},
		{"application_id with space", "POST", place, `{"application_id":"a b"}`, 400, CodeInvalidArgument, "application_id"},
		{"application_id too long", "POST", place, `{"application_id":"` + strings.Repeat("x", 300) + `"}`, 400, CodeInvalidArgument, "application_id"},
		{"unknown placed pack", "POST", place, `{"build_pack":"heroku"}`, 400, CodeInvalidArgument, "build_pack"},
		{"build pack as array", "POST", place, `{"build_pack":["dockerfile"]}`, 400, CodeInvalidArgument, "build_pack"},
		{"unknown profile", "POST", place, `{"profile":"gigantic"}`, 400, CodeInvalidArgument, "profile"},
		{"negative repository size", "POST", place, `{"repository_size_mb":-5}`, 400, CodeInvalidArgument, "repository_size_mb"},
		{"absurd repository size", "POST", place, `{"repository_size_mb":1e15}`, 400, CodeInvalidArgument, "repository_size_mb"},
		{"repository size as string", "POST", place, `{"repository_size_mb":"100"}`, 400, CodeInvalidArgument, "repository_size_mb"},
		{"negative memory", "POST", place, `{"requirements":{"memory":"-1g"}}`, 400, CodeInvalidArgument, "requirements.memory"},
		{"bad disk unit", "POST", place, `{"requirements":{"disk":"1 parsec"}}`, 400, CodeInvalidArgument, "requirements.disk"},
		{"unknown requirement", "POST", place, `{"requirements":{"gpu":1}}`, 400, CodeInvalidArgument, "requirements.gpu"},
		{"reserve as string", "POST", place, `{"reserve":"yes"}`, 400, CodeInvalidArgument, "reserve"},
		{"idempotency key as number", "POST", place, `{"idempotency_key":1}`, 400, CodeInvalidArgument, "idempotency_key"},
		{"idempotency key with control character", "POST", place, `{"idempotency_key":"a\u0001"}`, 400, CodeInvalidArgument, "idempotency_key"},
		{"ttl without reserve", "POST", place, `{"ttl":"5m"}`, 400, CodeInvalidArgument, "ttl"},
		{"bad ttl", "POST", place, `{"reserve":true,"ttl":"soon"}`, 400, CodeInvalidArgument, "ttl"},
		{"zero ttl", "POST", place, `{"reserve":true,"ttl":0}`, 400, CodeInvalidArgument, "ttl"},
		{"ttl above max", "POST", place, `{"reserve":true,"ttl":"100h"}`, 422, CodeUnprocessable, "ttl"},
		{"estimate unknown field", "POST", estimate, `{"reserve":true}`, 400, CodeInvalidArgument, "reserve"},
		{"estimate unknown profile", "POST", estimate, `{"profile":"x"}`, 400, CodeInvalidArgument, "profile"},
		{"estimate bad placed pack", "POST", estimate, `{"build_pack":"x"}`, 400, CodeInvalidArgument, "build_pack"},
		{"estimate negative size", "POST", estimate, `{"repository_size_mb":-1}`, 400, CodeInvalidArgument, "repository_size_mb"},
		{"estimate empty body", "POST", estimate, ``, 400, CodeInvalidArgument, ""},
		{"start unknown", "POST", "/api/v1/builds/rsv_nope/start", ``, 404, CodeNotFound, "id"},
		{"finish unknown", "POST", "/api/v1/builds/rsv_nope/finish", ``, 404, CodeNotFound, "id"},
		{"start a deployment", "POST", "/api/v1/builds/" + dep.Reservation.ID + "/start", ``, 409, CodeConflict, "id"},
		{"start bad ttl", "POST", start, `{"ttl":"x"}`, 400, CodeInvalidArgument, "ttl"},
		{"start zero ttl", "POST", start, `{"ttl":0}`, 400, CodeInvalidArgument, "ttl"},
		{"start ttl above max", "POST", start, `{"ttl":"48h"}`, 422, CodeUnprocessable, "ttl"},
		{"start unknown field", "POST", start, `{"when":"now"}`, 400, CodeInvalidArgument, "when"},
		{"build server unknown", "GET", "/api/v1/build-servers/nope", ``, 404, CodeNotFound, "server"},
		{"build server is an app server", "GET", "/api/v1/build-servers/app-1", ``, 404, CodeNotFound, "server"},
		{"GET on placements", "GET", place, ``, 405, CodeMethodNotAllowed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b, _ := e.do(tc.method, tc.path, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d; body: %s", status, tc.status, b)
			}
			got := apiError(t, b)
			if got.Code != tc.code || got.Field != tc.field {
				t.Errorf("code %q field %q, want %q %q; message: %s", got.Code, got.Field, tc.code, tc.field, got.Message)
			}
			if tc.field != "" && tc.status == 400 && !strings.Contains(got.Message, tc.field) {
				t.Errorf("message %q does not name the field %q", got.Message, tc.field)
			}
		})
	}
	// The placed survived all that, still queued.
	var l build.Load
	e.json("GET", "/api/v1/build-servers/build-1", "", 200, &l)
	if l.QueuedBuilds != 1 {
		t.Errorf("queued builds %d", l.QueuedBuilds)
	}
	if got := metricValue(t, e.reg, "berth_placement_requests_total", map[string]string{"code": "500"}); got != 0 {
		t.Errorf("%v requests answered 500", got)
	}
}

// fakeQuerier records the query and answers a fixed vector.
type fakeQuerier struct {
	query string
	ts    time.Time
	v     model.Vector
}

func (f *fakeQuerier) Query(_ context.Context, q string, ts time.Time) (model.Vector, error) {
	f.query, f.ts = q, ts
	return f.v, nil
}

// TestBuildHistoryQuery: the history query is valid PromQL, asks about the
// build's server and window, and its answer is read by signal.
func TestBuildHistoryQuery(t *testing.T) {
	start := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	b := build.Finished{ID: "rsv_1", ApplicationID: "42", Server: `build "1"`, StartedAt: start, EndedAt: start.Add(3 * time.Minute)}
	q := &fakeQuerier{v: model.Vector{
		{Metric: model.Metric{"signal": "memory"}, Value: 3e8},
		{Metric: model.Metric{"signal": "cpu"}, Value: 90},
		{Metric: model.Metric{"signal": "cores"}, Value: 4},
	}}
	h := promsource.NewBuildHistory(q, time.Second, 0)
	u, ok, err := h.BuildUsage(context.Background(), b)
	if err != nil || !ok || u != (build.Usage{PeakMemoryBytes: 3e8, CPUSeconds: 90, ServerCores: 4}) {
		t.Fatalf("usage %+v %v %v", u, ok, err)
	}
	if !q.ts.Equal(b.EndedAt) {
		t.Errorf("evaluated at %v, want the build's end", q.ts)
	}
	if _, err := parser.NewParser(parser.Options{}).ParseExpr(q.query); err != nil {
		t.Fatalf("history query does not parse: %v\n%s", err, q.query)
	}
	// Window: the build's 3 minutes plus the 1 minute start slack; starts
	// from 11:59:00 to 12:03:00; the server name escaped.
	for _, want := range []string{"[240s]", ">= 1795694340.000", "<= 1795694580.000", `server="build \"1\""`, `role="build"`} {
		if !strings.Contains(q.query, want) {
			t.Errorf("query lacks %s:\n%s", want, q.query)
		}
	}
	q.v = model.Vector{{Metric: model.Metric{"signal": "cores"}, Value: 4}}
	if _, ok, err := h.BuildUsage(context.Background(), b); ok || err != nil {
		t.Errorf("no container: ok %v err %v", ok, err)
	}
}

// TestBuildPlacementTieBreak: build choice is strictly least loaded by
// default (a server 2 load points more loaded is never chosen, whatever
// the request's hash), and the answer says when a tie-break decided:
// tie_break names the servers within builds.tie_tolerance of the least
// loaded, the chosen one first.
func TestBuildPlacementTieBreak(t *testing.T) {
	fleet := func() *placement.Snapshot {
		now := time.Now()
		snap := testFleet()
		delete(snap.Servers, "build-1")
		for _, b := range []struct {
			name string
			cpu  float64
		}{{"build-a", 0.10}, {"build-b", 0.15}, {"build-c", 0.10}} { // 10, 12 and 10 load points
			s := server(b.name, "build", "", 8, 16, 200, 5*time.Second, now)
			s.CPU.Utilisation, s.CPU.PeakUtilisation = b.cpu, b.cpu
			s.Memory.AvailableBytes = 16 * gibF * 0.8
			s.Memory.PeakUsedBytes = 16 * gibF * 0.2
			snap.Servers[b.name] = s
		}
		return snap
	}
	place := func(e *testEnv, key string) (BuildPlacementResponse, map[string]any) {
		t.Helper()
		status, b, _ := e.do("POST", "/api/v1/builds/placements", `{"idempotency_key":"`+key+`"}`)
		if status != 200 {
			t.Fatalf("POST /builds/placements: %d %s", status, b)
		}
		checkSchema(t, "POST", "/builds/placements", status, b)
		var out BuildPlacementResponse
		var raw map[string]any
		if err := json.Unmarshal(b, &out); err != nil || json.Unmarshal(b, &raw) != nil {
			t.Fatal(err)
		}
		return out, raw
	}

	e := newTestEnv(t)
	e.fleet.snap = fleet()
	chosen := map[string]bool{}
	for i := range 40 {
		out, _ := place(e, fmt.Sprintf("deploy-%d", i))
		chosen[out.Chosen] = true
		if out.TieBreak == nil || out.TieBreak.Tolerance != 0 || out.TieBreak.Servers[0] != out.Chosen ||
			!slices.Equal(slices.Sorted(slices.Values(out.TieBreak.Servers)), []string{"build-a", "build-c"}) {
			t.Fatalf("equal build-a and build-c: chose %s, tie_break %+v", out.Chosen, out.TieBreak)
		}
	}
	if chosen["build-b"] || len(chosen) != 2 {
		t.Errorf("chosen over 40 keys: %v; want build-a and build-c, never build-b (2 points more loaded)", chosen)
	}

	// A single least-loaded server: no tie_break in the answer.
	e.fleet.snap.Servers["build-c"].CPU.Utilisation = 0.11
	if out, raw := place(e, "single"); out.Chosen != "build-a" || raw["tie_break"] != nil {
		t.Errorf("single least loaded: chose %s, tie_break %v", out.Chosen, raw["tie_break"])
	}

	// builds.tie_tolerance 2 lets build-b (2 points more) into the tie, and says so.
	p, err := policy.Parse([]byte("builds: {tie_tolerance: 2}"))
	if err != nil {
		t.Fatal(err)
	}
	e = newTestEnv(t, withPolicy(policy.NewStaticStore(p)))
	e.fleet.snap = fleet()
	for i := range 40 {
		out, _ := place(e, fmt.Sprintf("deploy-%d", i))
		chosen[out.Chosen] = true
		if out.TieBreak == nil || out.TieBreak.Tolerance != 2 || len(out.TieBreak.Servers) != 3 {
			t.Fatalf("tolerance 2: tie_break %+v", out.TieBreak)
		}
	}
	if !chosen["build-b"] {
		t.Error("tolerance 2: build-b never chosen over 40 keys")
	}
}

package api

import (
	"github.com/berth-dev/berth/placement/build"
	"github.com/berth-dev/berth/placement/policy"

	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/berth-dev/berth/internal/metriclint"
	"github.com/berth-dev/berth/placement"
)

func withBuilds(cfg *BuildsConfig) envOption {
	return func(o *Options, _ *testEnv) { o.Builds = cfg }
}

// fakeHistory answers every build the same usage and counts the lookups.
type fakeHistory struct {
	mu     sync.Mutex
	usage  build.Usage
	ok     bool
	err    error
	lookup []build.Finished
}

func (f *fakeHistory) BuildUsage(_ context.Context, b build.Finished) (build.Usage, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookup = append(f.lookup, b)
	return f.usage, f.ok, f.err
}

func (f *fakeHistory) set(u build.Usage, ok bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.usage, f.ok, f.err = u, ok, err
}

func (f *fakeHistory) lookups() []build.Finished {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lookup)
}

// gathered returns every series of a metric family as "label=value,…" →
// value (histograms: their sample count), so absence can be told from 0.
func gathered(t *testing.T, g prometheus.Gatherer, name string) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			var v float64
			switch {
			case m.Gauge != nil:
				v = m.GetGauge().GetValue()
			case m.Counter != nil:
				v = m.GetCounter().GetValue()
			case m.Histogram != nil:
				v = float64(m.GetHistogram().GetSampleCount())
			default:
				t.Fatalf("%s: unexpected metric type", name)
			}
			out[strings.Join(labels, ",")] = v
		}
	}
	return out
}

// TestBuildMetricsLifecycle: the load score, duration and peak metrics
// follow a build through the API, with one history query per finish.
func TestBuildMetricsLifecycle(t *testing.T) {
	records, _ := build.OpenRecords("")
	history := &fakeHistory{usage: build.Usage{PeakMemoryBytes: 7e8, CPUSeconds: 30, ServerCores: 8}, ok: true}
	e := newTestEnv(t, withBuilds(&BuildsConfig{Records: records, History: history}))
	e.fleet.snap = buildFleet()

	// Before any request no build server is known: no score series.
	if got := gathered(t, e.reg, "berth_build_server_load_score"); len(got) != 0 {
		t.Errorf("scores before any request: %v", got)
	}
	var list BuildServerList
	e.json("GET", "/api/v1/build-servers", "", 200, &list)
	scores := gathered(t, e.reg, "berth_build_server_load_score")
	for _, l := range list.Servers {
		if got, ok := scores["server="+l.Server]; !ok || got != l.Score {
			t.Errorf("%s: score metric %v (present %v), API says %v", l.Server, got, ok, l.Score)
		}
	}
	if scores["server=build-b"] != 10*0.4+20*0.3 {
		t.Errorf("build-b score %v, want the seed's 10", scores["server=build-b"])
	}
	// The histogram exists at 0 for every build server seen.
	if got := gathered(t, e.reg, "berth_build_duration_seconds"); len(got) != 3 || got["server=build-a"] != 0 {
		t.Errorf("durations before any build: %v", got)
	}

	var first BuildPlacementResponse
	e.json("POST", "/api/v1/builds/placements", `{"application_id":"42","reserve":true}`, 200, &first)
	if first.Chosen != "build-b" {
		t.Fatalf("chosen %q", first.Chosen)
	}
	// The queued build counts in the score at once (weight 10), without a
	// new request reading the fleet.
	if got := gathered(t, e.reg, "berth_build_server_load_score")["server=build-b"]; got != 20 {
		t.Errorf("score with one queued build %v, want 20", got)
	}
	id := first.Reservation.ID
	var started placement.Reservation
	e.json("POST", "/api/v1/builds/"+id+"/start", "", 200, &started)
	if got := gathered(t, e.reg, "berth_build_server_load_score")["server=build-b"]; got != 25 {
		t.Errorf("score with one running build %v, want 25", got)
	}
	if got := gathered(t, e.reg, "berth_build_last_duration_seconds"); len(got) != 0 {
		t.Errorf("durations before a build finished: %v", got)
	}
	time.Sleep(20 * time.Millisecond) // a measurable duration
	before := time.Now()
	var fin BuildFinishResponse
	e.json("POST", "/api/v1/builds/"+id+"/finish", "", 200, &fin)
	after := time.Now()
	if !fin.HistoryRecorded {
		t.Fatal("finished build not recorded")
	}

	key := "application_id=42,server=build-b"
	d, ok := gathered(t, e.reg, "berth_build_last_duration_seconds")[key]
	if min, max := before.Sub(*started.StartedAt).Seconds(), after.Sub(*started.StartedAt).Seconds(); !ok || d < min || d > max {
		t.Errorf("last duration %v (present %v), want within [%v, %v]", d, ok, min, max)
	}
	if got := gathered(t, e.reg, "berth_build_last_peak_memory_bytes"); len(got) != 1 || got[key] != 7e8 {
		t.Errorf("last peak %v, want %s=7e8", got, key)
	}
	if end := gathered(t, e.reg, "berth_build_last_finished_timestamp_seconds")[key]; end < float64(before.Unix()) || end > float64(after.Unix()+1) {
		t.Errorf("last finished at %v, want within [%d, %d]", end, before.Unix(), after.Unix()+1)
	}
	if got := gathered(t, e.reg, "berth_build_duration_seconds"); got["server=build-b"] != 1 || got["server=build-a"] != 0 {
		t.Errorf("duration histogram counts %v", got)
	}
	// One query, about that build, at its end.
	if l := history.lookups(); len(l) != 1 || l[0].ID != id || l[0].Server != "build-b" || !l[0].StartedAt.Equal(*started.StartedAt) {
		t.Errorf("history lookups %+v", l)
	}
	// The peak is kept with the build (so it survives restarts with the
	// records file).
	if r := records.RecentBuilds("42", 1); len(r) != 1 || r[0].Usage.PeakMemoryBytes != 7e8 {
		t.Errorf("recorded %+v", r)
	}

	// A failing history: the finish succeeds, the build's duration is
	// exported, its peak is not (the application's older peak is not shown
	// for a newer build), and the failure is counted.
	history.set(build.Usage{}, false, errors.New("prometheus down"))
	var second BuildPlacementResponse
	e.json("POST", "/api/v1/builds/placements", `{"application_id":"42","reserve":true}`, 200, &second)
	e.json("POST", "/api/v1/builds/"+second.Reservation.ID+"/start", "", 200, &started)
	e.json("POST", "/api/v1/builds/"+second.Reservation.ID+"/finish", "", 200, &fin)
	if !fin.HistoryRecorded {
		t.Error("build not recorded when the peak lookup failed")
	}
	if got := metricValue(t, e.reg, "berth_placement_build_peak_errors_total", nil); got != 1 {
		t.Errorf("peak lookup errors %v, want 1", got)
	}
	if got := gathered(t, e.reg, "berth_build_last_peak_memory_bytes"); len(got) != 0 {
		t.Errorf("peak of an older build shown for the newest: %v", got)
	}
	if got := gathered(t, e.reg, "berth_build_last_duration_seconds"); len(got) != 1 {
		t.Errorf("one application, one duration series: %v", got)
	}

	// Not started (no duration) and no application (no history): the
	// histogram counts started builds only; no lookup for either.
	lookups := len(history.lookups())
	var unstarted, anonymous BuildPlacementResponse
	e.json("POST", "/api/v1/builds/placements", `{"application_id":"43","reserve":true}`, 200, &unstarted)
	e.json("POST", "/api/v1/builds/"+unstarted.Reservation.ID+"/finish", "", 200, &fin)
	e.json("POST", "/api/v1/builds/placements", `{"reserve":true}`, 200, &anonymous)
	e.json("POST", "/api/v1/builds/"+anonymous.Reservation.ID+"/start", "", 200, &started)
	e.json("POST", "/api/v1/builds/"+anonymous.Reservation.ID+"/finish", "", 200, &fin)
	total := 0.0
	for _, v := range gathered(t, e.reg, "berth_build_duration_seconds") {
		total += v
	}
	if total != 3 {
		t.Errorf("%v builds in the duration histogram, want 3 (two of 42, the anonymous one)", total)
	}
	if n := len(history.lookups()); n != lookups {
		t.Errorf("%d lookups for builds without history", n-lookups)
	}
	if _, ok := gathered(t, e.reg, "berth_build_last_duration_seconds")["application_id=43,server=build-b"]; ok {
		t.Error("an application whose build never started has a duration")
	}
}

// TestBuildMetricsBounded: per-application series only for builds ended
// within the max age, at most maxApplications of them, the newest.
func TestBuildMetricsBounded(t *testing.T) {
	records, _ := build.OpenRecords("")
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	finish := func(app string, end time.Time, d time.Duration, peak float64) {
		t.Helper()
		start := end.Add(-d)
		if ok, err := records.Finish(placement.Reservation{ID: "rsv_" + app + end.String(), ApplicationID: app, Server: "build-1", StartedAt: &start}, end, build.Usage{PeakMemoryBytes: peak}); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	finish("stale", now.Add(-8*24*time.Hour), time.Minute, 1e9)
	for i := range 5 {
		finish(fmt.Sprintf("app-%d", i), now.Add(-time.Duration(5-i)*time.Hour), time.Duration(i+1)*time.Minute, 0)
	}
	finish("app-0", now.Add(-time.Minute), 90*time.Second, 3e8) // app-0 built again, most recently

	m := newBuildMetrics(func() []placement.Reservation { return nil }, func() *policy.Policy { return policy.Default() }, records)
	m.now = func() time.Time { return now }
	m.maxApplications = 3
	reg := prometheus.NewRegistry()
	if err := m.register(reg); err != nil {
		t.Fatal(err)
	}
	got := gathered(t, reg, "berth_build_last_duration_seconds")
	want := map[string]float64{
		"application_id=app-0,server=build-1": 90,  // its newest build
		"application_id=app-4,server=build-1": 300, // ended 1h ago
		"application_id=app-3,server=build-1": 240, // ended 2h ago
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("durations %v, want %v", got, want)
	}
	if got := gathered(t, reg, "berth_build_last_peak_memory_bytes"); len(got) != 1 || got["application_id=app-0,server=build-1"] != 3e8 {
		t.Errorf("peaks %v: only app-0's newest build has one", got)
	}
	m.maxApplications = 100
	if got := gathered(t, reg, "berth_build_last_duration_seconds"); len(got) != 5 {
		t.Errorf("%d applications within 7 days, want 5 (not the one 8 days old): %v", len(got), got)
	}

	// Load scores are dropped once the snapshot they came from is too old.
	snap := buildFleet()
	snap.Taken = now
	m.see(snap, []build.Load{{Server: "build-a"}})
	if got := gathered(t, reg, "berth_build_server_load_score"); len(got) != 1 {
		t.Errorf("scores %v", got)
	}
	m.now = func() time.Time { return now.Add(loadScoreMaxAge + time.Second) }
	if got := gathered(t, reg, "berth_build_server_load_score"); len(got) != 0 {
		t.Errorf("scores from a snapshot older than %s: %v", loadScoreMaxAge, got)
	}
	if got := gathered(t, reg, "berth_build_queue_length"); got["server=build-a"] != 0 || len(got) != 1 {
		t.Errorf("queue length of a known server without its score: %v", got)
	}
}

// TestBuildMetricsLint runs promlint (promtool's metric linter) over the build
// metrics with every series present.
func TestBuildMetricsLint(t *testing.T) {
	records, _ := build.OpenRecords("")
	history := &fakeHistory{usage: build.Usage{PeakMemoryBytes: 7e8}, ok: true}
	e := newTestEnv(t, withBuilds(&BuildsConfig{Records: records, History: history}))
	e.fleet.snap = buildFleet()
	var p BuildPlacementResponse
	e.json("POST", "/api/v1/builds/placements", `{"application_id":"42","reserve":true}`, 200, &p)
	var r placement.Reservation
	e.json("POST", "/api/v1/builds/"+p.Reservation.ID+"/start", "", 200, &r)
	var fin BuildFinishResponse
	e.json("POST", "/api/v1/builds/"+p.Reservation.ID+"/finish", "", 200, &fin)

	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var builds []*dto.MetricFamily
	names := map[string]bool{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "berth_build") && !strings.HasPrefix(mf.GetName(), "berth_placement_build") {
			continue
		}
		names[mf.GetName()] = true
		builds = append(builds, mf)
	}
	for _, want := range []string{"berth_build_server_load_score", "berth_build_last_duration_seconds", "berth_build_last_peak_memory_bytes",
		"berth_build_last_finished_timestamp_seconds", "berth_build_duration_seconds", "berth_placement_build_peak_errors_total"} {
		if !names[want] {
			t.Errorf("%s not exported", want)
		}
	}
	metriclint.Families(t, builds, nil)
}

package build

import (
	"github.com/berth-dev/berth/internal/placementtest"
	"github.com/berth-dev/berth/internal/reservationtest"
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/schedule"

	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func buildRequest(reserve bool) placement.Request {
	return placement.Request{Kind: placement.KindBuild, Requirements: placement.Resources{Memory: 2 * placementtest.GiB, Disk: 4 * placementtest.GiB}, Reserve: reserve}
}

func decideBuild(t *testing.T, p *policy.Policy, snap *placement.Snapshot, open []placement.Reservation) (*placement.Decision, *Decider) {
	t.Helper()
	d := &Decider{Now: func() time.Time { return placementtest.Now }}
	req := buildRequest(false)
	return d.Decide(p, snap, &req, open, 1), d
}

func TestBuildDeciderLeastLoaded(t *testing.T) {
	p := policy.Default()
	snap := placementtest.Fleet(
		buildServer("busy", 80, 70, 0),
		buildServer("calm", 10, 20, 0),
		buildServer("mid", 40, 40, 0),
		placementtest.Server("app-1"), // never considered for builds
	)
	dec, d := decideBuild(t, p, snap, nil)
	if dec.Chosen != "calm" || d.Outcome != Placed {
		t.Fatalf("chose %q (%s), want calm: %+v", dec.Chosen, d.Outcome, dec)
	}
	var order []string
	for _, r := range dec.Ranking {
		order = append(order, r.Server)
	}
	if !slices.Equal(order, []string{"calm", "mid", "busy"}) || dec.Considered != 3 {
		t.Errorf("ranking %v (considered %d), want least loaded first over the 3 build servers", order, dec.Considered)
	}
	if dec.Score != 10*0.4+20*0.3 {
		t.Errorf("score %v", dec.Score)
	}
	for _, r := range dec.Ranking {
		for _, dm := range r.Dimensions {
			if dm.Dimension == placement.DimensionCPU {
				t.Errorf("cpu checked although the request named none: %+v", r)
			}
		}
	}

	if d.TieBreak != nil {
		t.Errorf("tie-break %+v reported, but calm is the single least loaded", d.TieBreak)
	}

	// Running builds weigh in (15 points each): calm with one (25 points)
	// is still less loaded than mid (28), and is chosen whatever the seed
	// (with the tolerance of 5 points builds once shared with deployments,
	// mid could win); 2 more CPU points (0.8) and it is more loaded.
	snap.Servers["calm"].Containers.BuildsActive = 1
	for seed := range uint64(32) {
		req := buildRequest(false)
		d := &Decider{Now: func() time.Time { return placementtest.Now }}
		if dec := d.Decide(p, snap, &req, nil, seed); dec.Chosen != "calm" || d.TieBreak != nil {
			t.Fatalf("calm with a running build (25 points, mid 28), seed %d: chose %s (tie-break %+v), want calm", seed, dec.Chosen, d.TieBreak)
		}
	}
	snap.Servers["calm"].CPU.Utilisation = 0.18
	if dec, _ := decideBuild(t, p, snap, nil); dec.Chosen != "mid" {
		t.Errorf("calm with a running build and 18%% CPU (28.2 points, mid 28): chose %s, want mid", dec.Chosen)
	}
	snap.Servers["calm"].CPU.Utilisation = 0.10
	snap.Servers["calm"].Containers.BuildsActive = 2
	dec, _ = decideBuild(t, p, snap, nil)
	rejected := map[string][]placement.Reason{}
	for _, r := range dec.Rejected {
		rejected[r.Server] = r.Reasons
	}
	if dec.Chosen != "mid" || !slices.Equal(rejected["calm"], []placement.Reason{placement.ReasonAtBuildCapacity}) {
		t.Errorf("calm at its cap: chose %s, rejected %v", dec.Chosen, rejected)
	}
}

// TestBuildDeciderTieTolerance: builds.tie_tolerance is the load-point
// distance within which build servers tie (0: only equal scores); when a
// tie-break picks, TieBreak names the tied servers in the order the hash
// put them, the chosen one first.
func TestBuildDeciderTieTolerance(t *testing.T) {
	if got := policy.Default().Builds.TieTolerance; got != 0 {
		t.Errorf("default builds.tie_tolerance %v, want 0 (strictly least loaded)", got)
	}
	snap := placementtest.Fleet(
		buildServer("a", 10, 20, 0), // 10 points
		buildServer("b", 10, 20, 0), // 10: equal to a
		buildServer("c", 15, 20, 0), // 12: 2 points more
		buildServer("d", 40, 40, 0), // 28
	)
	decide := func(p *policy.Policy, seed uint64) (*placement.Decision, *Decider) {
		req := buildRequest(false)
		d := &Decider{Now: func() time.Time { return placementtest.Now }}
		return d.Decide(p, snap, &req, nil, seed), d
	}
	for _, tc := range []struct {
		policy string
		tied   []string // the servers a tie-break may pick among
	}{
		{"{}", []string{"a", "b"}},                            // default 0: equal scores only
		{"builds: {tie_tolerance: 1.99}", []string{"a", "b"}}, // c is 2 points more
		{"builds: {tie_tolerance: 2}", []string{"a", "b", "c"}},
		{"builds: {tie_tolerance: 100}", []string{"a", "b", "c", "d"}},
	} {
		p, err := policy.Parse([]byte(tc.policy))
		if err != nil {
			t.Fatal(err)
		}
		chosen := map[string]bool{}
		for seed := range uint64(64) {
			dec, d := decide(p, seed)
			chosen[dec.Chosen] = true
			if d.TieBreak == nil || d.TieBreak.Tolerance != p.Builds.TieTolerance || d.TieBreak.Servers[0] != dec.Chosen {
				t.Fatalf("%s, seed %d: chose %s, tie-break %+v", tc.policy, seed, dec.Chosen, d.TieBreak)
			}
			if got := slices.Sorted(slices.Values(d.TieBreak.Servers)); !slices.Equal(got, tc.tied) {
				t.Fatalf("%s, seed %d: tied servers %v, want %v", tc.policy, seed, got, tc.tied)
			}
			for i, s := range d.TieBreak.Servers {
				if dec.Ranking[i].Server != s {
					t.Fatalf("%s: tie-break order %v is not the ranking's head %+v", tc.policy, d.TieBreak.Servers, dec.Ranking)
				}
			}
		}
		// Over 64 seeds, each tied server is picked at some point: the
		// hash spreads identical requests over equally loaded servers.
		if len(chosen) != len(tc.tied) {
			t.Errorf("%s: chosen %v over 64 seeds, want each of %v", tc.policy, chosen, tc.tied)
		}
	}
	// Strictly least loaded, no tie: no tie-break reported.
	snap.Servers["b"].CPU.Utilisation = 0.11
	p := policy.Default()
	for seed := range uint64(16) {
		if dec, d := decide(p, seed); dec.Chosen != "a" || d.TieBreak != nil {
			t.Fatalf("seed %d: chose %s, tie-break %+v; want a, none", seed, dec.Chosen, d.TieBreak)
		}
	}
	// The deployments' scoring.tie_tolerance does not apply to builds.
	p, err := policy.Parse([]byte("scoring: {tie_tolerance: 100}"))
	if err != nil {
		t.Fatal(err)
	}
	if dec, d := decide(p, 3); dec.Chosen != "a" || d.TieBreak != nil {
		t.Errorf("scoring.tie_tolerance 100: chose %s, tie-break %+v; builds must keep their own tolerance", dec.Chosen, d.TieBreak)
	}
	if _, err := policy.Parse([]byte("builds: {tie_tolerance: -1}")); err == nil || !strings.Contains(err.Error(), "builds.tie_tolerance: must be ≥ 0") {
		t.Errorf("negative builds.tie_tolerance: %v", err)
	}
}

func TestBuildDeciderRejections(t *testing.T) {
	p := policy.Default()
	stale := buildServer("stale", 0, 0, 0)
	stale.Age, stale.LastSeen = 5*time.Minute, placementtest.Now.Add(-5*time.Minute)
	gone := buildServer("gone", 0, 0, 0)
	gone.Age, gone.LastSeen = time.Hour, placementtest.Now.Add(-time.Hour)
	small := buildServer("small", 0, 0, 0)
	small.Memory = placement.MemoryState{TotalBytes: 2 * placementtest.GiB, AvailableBytes: 2 * placementtest.GiB}
	fullDisk := buildServer("fulldisk", 0, 0, 0)
	fullDisk.Disk.AvailableBytes = 1 * placementtest.GiB
	dec, d := decideBuild(t, p, placementtest.Fleet(stale, gone, small, fullDisk), nil)
	want := map[string][]placement.Reason{
		"stale":    {placement.ReasonMetricsStale},
		"gone":     {placement.ReasonMetricsMissing},
		"small":    {placement.ReasonInsufficientMemory},
		"fulldisk": {placement.ReasonInsufficientDisk},
	}
	if dec.Chosen != "" || d.Outcome != NoFit || d.Wait != nil || len(dec.Rejected) != 4 {
		t.Fatalf("decision %+v outcome %s", dec, d.Outcome)
	}
	for _, r := range dec.Rejected {
		if !slices.Equal(r.Reasons, want[r.Server]) {
			t.Errorf("%s: reasons %v, want %v", r.Server, r.Reasons, want[r.Server])
		}
	}
	if dec.Summary != "0/4 servers can take this build: 1 insufficient disk, 1 insufficient memory, 1 metrics missing, 1 metrics stale" {
		t.Errorf("summary %q", dec.Summary)
	}

	// CPU is checked when the request names it.
	req := placement.Request{Kind: placement.KindBuild, Requirements: placement.Resources{CPU: 100}}
	dec = (&Decider{}).Decide(p, placementtest.Fleet(buildServer("b", 0, 0, 0)), &req, nil, 1)
	if dec.Chosen != "" || !slices.Equal(dec.Rejected[0].Reasons, []placement.Reason{placement.ReasonInsufficientCPU}) {
		t.Errorf("100 cores: %+v", dec)
	}
}

func TestBuildDeciderNoBuildServer(t *testing.T) {
	dec, d := decideBuild(t, policy.Default(), placementtest.Fleet(placementtest.Server("app-1"), placementtest.Server("app-2")), nil)
	if dec.Chosen != "" || d.Outcome != OnDeploymentServer || dec.Considered != 0 || len(dec.Rejected) != 0 {
		t.Errorf("no build server: %+v, outcome %s", dec, d.Outcome)
	}
}

func TestBuildDeciderFullGivesShortestWait(t *testing.T) {
	p := policy.Default() // cap 2, default profile 5m
	started := func(server, id string, ago time.Duration) placement.Reservation {
		at := placementtest.Now.Add(-ago)
		return placement.Reservation{ID: id, Server: server, Kind: placement.KindBuild, State: placement.StateActive, StartedAt: &at, CreatedAt: at}
	}
	queued := func(server, id string, created time.Duration) placement.Reservation {
		return placement.Reservation{ID: id, Server: server, Kind: placement.KindBuild, State: placement.StateQueued, CreatedAt: placementtest.Now.Add(-created)}
	}
	expected := map[string]time.Duration{"a1": 10 * time.Minute, "a2": 10 * time.Minute, "b1": 20 * time.Minute, "b2": 20 * time.Minute, "bq": 3 * time.Minute}
	for _, tc := range []struct {
		name   string
		open   []placement.Reservation
		server string
		wait   time.Duration
	}{
		// a: builds of 10m started 9m and 2m ago: a slot in 1m.
		// b: builds of 20m started 19m30s and 18m ago: a slot in 30s.
		{"earliest slot wins", []placement.Reservation{
			started("a", "a1", 9*time.Minute), started("a", "a2", 2*time.Minute),
			started("b", "b1", 19*time.Minute+30*time.Second), started("b", "b2", 18*time.Minute),
		}, "b", 30 * time.Second},
		// b's slot at 30s goes to the queued 3m build; the next frees at
		// 2m, later than a's.
		{"queue ahead delays", []placement.Reservation{
			started("a", "a1", 9*time.Minute), started("a", "a2", 2*time.Minute),
			started("b", "b1", 19*time.Minute+30*time.Second), started("b", "b2", 18*time.Minute), queued("b", "bq", time.Minute),
		}, "a", time.Minute},
		// Two queued on b: bq at 30s (ends 3m30s), bq2 (unknown: 5m) at 2m;
		// ours at 3m30s. a is shorter still.
		{"two queued", []placement.Reservation{
			started("a", "a1", 5*time.Minute), started("a", "a2", 4*time.Minute),
			started("b", "b1", 19*time.Minute+30*time.Second), started("b", "b2", 18*time.Minute), queued("b", "bq", time.Minute), queued("b", "bq2", 0),
		}, "b", 3*time.Minute + 30*time.Second},
		{"overrunning builds may end now", []placement.Reservation{
			started("a", "a1", time.Hour), started("a", "a2", time.Hour),
			started("b", "b1", 0), started("b", "b2", 0),
		}, "a", 0},
	} {
		d := &Decider{Now: func() time.Time { return placementtest.Now },
			Expected: func(id string) (time.Duration, bool) { e, ok := expected[id]; return e, ok }}
		req := buildRequest(false)
		dec := d.Decide(p, placementtest.Fleet(buildServer("a", 0, 0, 0), buildServer("b", 0, 0, 0)), &req, tc.open, 1)
		if dec.Chosen != "" || d.Outcome != Full || d.Wait == nil {
			t.Errorf("%s: %+v outcome %s", tc.name, dec, d.Outcome)
			continue
		}
		if d.Wait.Server != tc.server || d.Wait.Seconds != tc.wait.Seconds() || !d.Wait.ExpectedStart.Equal(placementtest.Now.Add(tc.wait)) {
			t.Errorf("%s: wait %+v, want %s on %s", tc.name, *d.Wait, tc.wait, tc.server)
		}
	}

	// A build seen only in metrics is taken as half a default build (2m30s left).
	d := &Decider{Now: func() time.Time { return placementtest.Now }}
	req := buildRequest(false)
	d.Decide(p, placementtest.Fleet(buildServer("m", 0, 0, 2)), &req, nil, 1)
	if d.Outcome != Full || d.Wait.Seconds != 150 {
		t.Errorf("metrics-only builds: %s %+v", d.Outcome, d.Wait)
	}
}

// TestBuildPlacementRespectsCaps: many concurrent reserving build
// placements over three build servers with a cap of 2 fill exactly 6
// slots, none above its cap, and tell the rest to wait.
func TestBuildPlacementRespectsCaps(t *testing.T) {
	c := placementtest.NewClock()
	pl := schedule.NewPlacer(policy.NewStaticStore(policy.Default()), reservationtest.Open(t, t.TempDir(), c))
	snap := placementtest.Fleet(buildServer("b1", 10, 10, 0), buildServer("b2", 20, 20, 0), buildServer("b3", 30, 30, 1), placementtest.Server("app"))
	const n = 20
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		outcomes = map[Outcome]int{}
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &Decider{Now: c.Now}
			req := buildRequest(true)
			req.IdempotencyKey = fmt.Sprint("k", i)
			dec, err := pl.PlaceWith(snap, req, d)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			outcomes[d.Outcome]++
			if (dec.Reservation != nil) != (d.Outcome == Placed) || (d.Wait != nil) != (d.Outcome == Full) {
				t.Errorf("outcome %s with reservation %v, wait %v", d.Outcome, dec.Reservation, d.Wait)
			}
		}()
	}
	wg.Wait()
	if outcomes[Placed] != 5 || outcomes[Full] != n-5 {
		t.Errorf("outcomes %v, want 5 placed (2+2+1 free slots) and the rest full", outcomes)
	}
	for _, l := range Loads(policy.Default(), snap, pl.Store().List()) {
		if l.ActiveBuilds+l.QueuedBuilds != l.ConcurrentBuilds {
			t.Errorf("%s: %d active + %d queued, cap %d", l.Server, l.ActiveBuilds, l.QueuedBuilds, l.ConcurrentBuilds)
		}
	}
}

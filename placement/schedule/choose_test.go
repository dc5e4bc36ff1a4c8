package schedule

import (
	"github.com/berth-dev/berth/internal/placementtest"
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/fit"
	"github.com/berth-dev/berth/placement/policy"

	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestChooseSpreadVsPack(t *testing.T) {
	p := policy.Default()
	snap := placementtest.Fleet(
		placementtest.Server("empty"),
		placementtest.Server("half", placementtest.Busy(0.45, 0.45)),
		placementtest.Server("full", placementtest.Busy(0.85, 0.85)), // room 0.2 cores: too small for the request
	)
	req := &placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{CPU: 0.5, Memory: 512 * placementtest.MiB}}

	spread := Choose(p, snap, req, nil, 1)
	if spread.Chosen != "empty" || spread.Strategy != placement.StrategySpread {
		t.Errorf("spread chose %q (%s), ranking %+v", spread.Chosen, spread.Strategy, spread.Ranking)
	}
	req.Strategy = placement.StrategyPack
	pack := Choose(p, snap, req, nil, 1)
	if pack.Chosen != "half" || pack.Strategy != placement.StrategyPack {
		t.Errorf("pack chose %q, ranking %+v", pack.Chosen, pack.Ranking)
	}
	for _, d := range []*placement.Decision{spread, pack} {
		if len(d.Ranking) != 2 || d.Ranking[0].Score <= d.Ranking[1].Score || d.Score != d.Ranking[0].Score {
			t.Errorf("%s ranking = %+v, want 2 servers best first", d.Strategy, d.Ranking)
		}
		if len(d.Rejected) != 1 || d.Rejected[0].Server != "full" || !slices.Equal(d.Rejected[0].Reasons, []placement.Reason{placement.ReasonInsufficientCPU, placement.ReasonInsufficientMemory}) {
			t.Errorf("rejected = %+v", d.Rejected)
		}
	}

	// The policy's strategy applies when the request names none.
	pp, err := policy.Parse([]byte("scoring: {strategy: pack}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Strategy = ""
	if d := Choose(pp, snap, req, nil, 1); d.Chosen != "half" || d.Strategy != placement.StrategyPack {
		t.Errorf("policy pack chose %q", d.Chosen)
	}
}

func TestScoreBounds(t *testing.T) {
	p := policy.Default()
	dims := fit.Dimensions(p, placementtest.Server("a"), placement.Resources{}, placement.Resources{})
	if got := fit.Score(p, placement.StrategySpread, dims); got != 100 {
		t.Errorf("spread score of an empty server = %v, want 100", got)
	}
	if got := fit.Score(p, placement.StrategyPack, dims); got != 0 {
		t.Errorf("pack score of an empty server = %v, want 0", got)
	}
	// Filling the whole room: spread 0, pack 100.
	dims = fit.Dimensions(p, placementtest.Server("a"), placement.Resources{CPU: 3.6, Memory: 7730941132, Disk: 80 * placementtest.GiB}, placement.Resources{})
	if got := fit.Score(p, placement.StrategySpread, dims); got != 0 {
		t.Errorf("spread score of a filled server = %v, want 0", got)
	}
	if got := fit.Score(p, placement.StrategyPack, dims); got != 100 {
		t.Errorf("pack score of a filled server = %v, want 100", got)
	}
}

func TestChooseReservationsShiftChoice(t *testing.T) {
	p := policy.Default()
	snap := placementtest.Fleet(placementtest.Server("a"), placementtest.Server("b"))
	req := &placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{CPU: 1, Memory: placementtest.GiB}}
	d := Choose(p, snap, req, map[string]placement.Resources{"a": {CPU: 2, Memory: 4 * placementtest.GiB}}, 7)
	if d.Chosen != "b" {
		t.Errorf("chose %q although a holds reservations: %+v", d.Chosen, d.Ranking)
	}
	d = Choose(p, snap, &placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{CPU: 2}}, map[string]placement.Resources{"a": {CPU: 3}}, 7)
	if d.Chosen != "b" || len(d.Rejected) != 1 || d.Rejected[0].Reasons[0] != placement.ReasonInsufficientCPU {
		t.Errorf("reservation did not make a unfit: %+v", d)
	}
}

func TestChooseSummary(t *testing.T) {
	p := policy.Default()
	var servers []*placement.ServerState
	for i := range 3 {
		servers = append(servers, placementtest.Server(fmt.Sprintf("ok-%d", i)))
	}
	for i := range 5 {
		servers = append(servers, placementtest.Server(fmt.Sprintf("mem-%d", i), placementtest.Busy(0, 0.95)))
	}
	for i := range 4 {
		servers = append(servers, placementtest.Server(fmt.Sprintf("stale-%d", i), func(s *placement.ServerState) { s.Age = 5 * time.Minute }))
	}
	d := Choose(p, placementtest.Fleet(servers...), &placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{Memory: placementtest.GiB}}, nil, 1)
	if want := "3/12 servers can take this deployment: 5 insufficient memory, 4 metrics stale"; d.Summary != want {
		t.Errorf("summary = %q, want %q", d.Summary, want)
	}
	if d.Considered != 12 || len(d.Ranking) != 3 || len(d.Rejected) != 9 {
		t.Errorf("considered %d, ranked %d, rejected %d", d.Considered, len(d.Ranking), len(d.Rejected))
	}

	if got := Summary(0, 0, placement.KindBuild, nil); got != "0/0 servers can take this build" {
		t.Errorf("empty summary = %q", got)
	}
	// Ties in count are ordered by code; a server with two reasons counts twice.
	got := Summary(1, 3, placement.KindDeployment, []placement.Rejected{
		{Reasons: []placement.Reason{placement.ReasonInsufficientMemory, placement.ReasonInsufficientCPU}},
		{Reasons: []placement.Reason{placement.ReasonWrongRole}},
	})
	if want := "1/3 servers can take this deployment: 1 insufficient cpu, 1 insufficient memory, 1 wrong role"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
}

func TestChooseExcludesBuildStaleMissing(t *testing.T) {
	p := policy.Default()
	snap := placementtest.Fleet(
		placementtest.Server("app", placementtest.Busy(0.7, 0.7)),
		// Each of these would win on room if it were eligible.
		placementtest.Server("build", func(s *placement.ServerState) { s.Role = placement.RoleBuild }),
		placementtest.Server("stale", func(s *placement.ServerState) { s.Age = 3 * time.Minute }),
		placementtest.Server("gone", func(s *placement.ServerState) { s.Age = 2 * time.Hour }),
		placementtest.Server("partial", func(s *placement.ServerState) {
			s.Missing, s.CapacityMissing = []string{"server:node_cpus:count"}, true
		}),
	)
	for seed := range uint64(50) {
		d := Choose(p, snap, &placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{CPU: 0.1}}, nil, seed)
		if d.Chosen != "app" {
			t.Fatalf("seed %d chose %q", seed, d.Chosen)
		}
	}
	d := Choose(p, snap, &placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{CPU: 0.1}}, nil, 0)
	want := map[string]placement.Reason{"build": placement.ReasonWrongRole, "stale": placement.ReasonMetricsStale, "gone": placement.ReasonMetricsMissing, "partial": placement.ReasonMetricsMissing}
	for _, r := range d.Rejected {
		if want[r.Server] != r.Reasons[0] || len(r.Reasons) != 1 {
			t.Errorf("%s rejected for %v, want %v", r.Server, r.Reasons, want[r.Server])
		}
		delete(want, r.Server)
	}
	if len(want) != 0 {
		t.Errorf("not rejected: %v", want)
	}
}

func TestChooseCandidates(t *testing.T) {
	p := policy.Default()
	snap := placementtest.Fleet(placementtest.Server("a"), placementtest.Server("b", placementtest.Busy(0.5, 0.5)), placementtest.Server("c"))
	d := Choose(p, snap, &placement.Request{Kind: placement.KindDeployment, Candidates: []string{"b", "nope", "b"}}, nil, 1)
	if d.Chosen != "b" || d.Considered != 2 {
		t.Errorf("chose %q of %d considered", d.Chosen, d.Considered)
	}
	if len(d.Rejected) != 1 || d.Rejected[0].Server != "nope" || d.Rejected[0].Reasons[0] != placement.ReasonServerNotFound {
		t.Errorf("rejected = %+v", d.Rejected)
	}
	if d.Summary != "1/2 servers can take this deployment: 1 server not found" {
		t.Errorf("summary = %q", d.Summary)
	}
	none := Choose(p, snap, &placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{CPU: 1000}}, nil, 1)
	if none.Chosen != "" || none.Score != 0 || len(none.Ranking) != 0 || none.Summary != "0/3 servers can take this deployment: 3 insufficient cpu" {
		t.Errorf("impossible request: %+v", none)
	}
}

// TestChooseTieBreak: equally good servers are picked by seed, so a burst
// of identical requests spreads; a seed always gives the same server; a
// server clearly worse than the best is never picked.
func TestChooseTieBreak(t *testing.T) {
	p := policy.Default()
	var servers []*placement.ServerState
	for i := range 10 {
		// Scores differ by less than the 5-point tolerance.
		servers = append(servers, placementtest.Server(fmt.Sprintf("s%02d", i), placementtest.Busy(float64(i)*0.003, 0)))
	}
	servers = append(servers, placementtest.Server("worse", placementtest.Busy(0.5, 0.5)))
	snap := placementtest.Fleet(servers...)
	req := &placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{CPU: 0.5}}

	counts := map[string]int{}
	for seed := range uint64(500) {
		d := Choose(p, snap, req, nil, seed)
		counts[d.Chosen]++
		if again := Choose(p, snap, req, nil, seed); again.Chosen != d.Chosen {
			t.Fatalf("seed %d chose %q then %q", seed, d.Chosen, again.Chosen)
		}
		if d.Ranking[len(d.Ranking)-1].Server != "worse" {
			t.Fatalf("the clearly worse server is not last: %+v", d.Ranking)
		}
	}
	if counts["worse"] != 0 {
		t.Errorf("worse server chosen %d times", counts["worse"])
	}
	if len(counts) != 10 {
		t.Errorf("500 seeds used only %d of 10 equal servers: %v", len(counts), counts)
	}
	for s, n := range counts {
		// Uniform would be 50 each; a herd would put hundreds on one.
		if n > 150 {
			t.Errorf("%s chosen %d/500 times: herding", s, n)
		}
	}

	// Zero tolerance: the strictly best wins whatever the seed.
	strict, err := policy.Parse([]byte("scoring: {tie_tolerance: 0}"))
	if err != nil {
		t.Fatal(err)
	}
	for seed := range uint64(20) {
		if d := Choose(strict, snap, req, nil, seed); d.Chosen != "s00" {
			t.Fatalf("tolerance 0, seed %d chose %q", seed, d.Chosen)
		}
	}
	if SeedFromKey("k1") == SeedFromKey("k2") || SeedFromKey("k1") != SeedFromKey("k1") {
		t.Error("SeedFromKey is not a function of the key")
	}
}

func TestRequestValidate(t *testing.T) {
	p := policy.Default()
	for _, tc := range []struct {
		req   placement.Request
		field string
	}{
		{placement.Request{Kind: "vm"}, "kind"},
		{placement.Request{Kind: placement.KindDeployment, Strategy: "random"}, "strategy"},
		{placement.Request{Kind: placement.KindDeployment, TTL: -time.Second}, "ttl"},
		{placement.Request{Kind: placement.KindDeployment, TTL: 25 * time.Hour}, "ttl"},
		{placement.Request{Kind: placement.KindDeployment, Candidates: []string{"a", ""}}, "candidates[1]"},
		{placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{Memory: -1}}, "requirements"},
		{placement.Request{Kind: placement.KindDeployment, Organization: "acme corp"}, "organization"},
		{placement.Request{Kind: placement.KindDeployment, ApplicationID: "app\n1"}, "application_id"},
		{placement.Request{Kind: placement.KindDeployment, IdempotencyKey: strings.Repeat("k", 10000)}, "idempotency_key"},
	} {
		err := Validate(p, &tc.req)
		fe, ok := err.(*placement.FieldError)
		if !ok || fe.Field != tc.field {
			t.Errorf("%+v: err = %v, want field %q", tc.req, err, tc.field)
		}
	}
	if err := Validate(p, &placement.Request{Kind: placement.KindBuild, TTL: time.Hour}); err != nil {
		t.Errorf("valid request: %v", err)
	}
}

// BenchmarkChoose measures one deployment decision over 1000 servers, in
// memory (no reservations written).
func BenchmarkChoose(b *testing.B) {
	p := policy.Default()
	var servers []*placement.ServerState
	for i := range 1000 {
		servers = append(servers, placementtest.Server(fmt.Sprintf("s%04d", i), placementtest.Busy(float64(i%90)/100, float64(i%80)/100)))
	}
	snap := placementtest.Fleet(servers...)
	req := &placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{CPU: 0.5, Memory: 512 * placementtest.MiB}}
	reserved := map[string]placement.Resources{"s0001": {CPU: 1}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if d := Choose(p, snap, req, reserved, uint64(i)); d.Chosen == "" {
			b.Fatal("nothing chosen")
		}
	}
}

// TestChooseOrganization: an organization's deployment goes to its own
// servers or to shared ones, never to another organization's.
func TestChooseOrganization(t *testing.T) {
	p := policy.Default()
	org := func(o string) func(*placement.ServerState) {
		return func(s *placement.ServerState) { s.Organization = o }
	}
	snap := placementtest.Fleet(placementtest.Server("acme-1", org("acme"), placementtest.Busy(0.6, 0.6)), placementtest.Server("globex-1", org("globex")), placementtest.Server("shared"))

	d := Choose(p, snap, &placement.Request{Kind: placement.KindDeployment, Organization: "acme"}, nil, 1)
	if d.Chosen != "shared" || len(d.Ranking) != 2 {
		t.Errorf("acme: chose %q, ranking %+v; want shared first of acme-1 and shared", d.Chosen, d.Ranking)
	}
	if len(d.Rejected) != 1 || d.Rejected[0].Server != "globex-1" || d.Rejected[0].Reasons[0] != placement.ReasonWrongOrganization {
		t.Errorf("acme: rejected = %+v, want globex-1 wrong_organization", d.Rejected)
	}
	if d.Summary != "2/3 servers can take this deployment: 1 wrong organization" {
		t.Errorf("summary = %q", d.Summary)
	}
	if any := Choose(p, snap, &placement.Request{Kind: placement.KindDeployment}, nil, 1); len(any.Ranking) != 3 {
		t.Errorf("no organization: ranking %+v, want all three servers", any.Ranking)
	}
}

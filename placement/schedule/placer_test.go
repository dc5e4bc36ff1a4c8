package schedule

import (
	"github.com/berth-dev/berth/internal/placementtest"
	"github.com/berth-dev/berth/internal/reservationtest"
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/reservation"

	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func newPlacer(t *testing.T, dir string, c *placementtest.Clock, admissions ...Admission) *Placer {
	t.Helper()
	return NewPlacer(policy.NewStaticStore(policy.Default()), reservationtest.Open(t, dir, c), admissions...)
}

// roomFor10 is five idle 4-core servers; 1.5-core requests fit twice on
// each (usable 3.6 cores), so the fleet has room for exactly 10.
func roomFor10() *placement.Snapshot {
	var servers []*placement.ServerState
	for i := range 5 {
		servers = append(servers, placementtest.Server(fmt.Sprintf("s%d", i)))
	}
	// A build server with room to spare must not absorb any of them.
	servers = append(servers, placementtest.Server("build", func(s *placement.ServerState) { s.Role = placement.RoleBuild; s.CPU.Cores = 64 }))
	return placementtest.Fleet(servers...)
}

func TestPlacerConcurrentReservationsExactlyFill(t *testing.T) {
	c := placementtest.NewClock()
	pl := newPlacer(t, t.TempDir(), c)
	snap := roomFor10()
	req := placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{CPU: 1.5, Memory: 256 * placementtest.MiB}, Reserve: true}

	const n = 50
	var (
		wg        sync.WaitGroup
		decisions = make([]*placement.Decision, n)
		errs      = make([]error, n)
	)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			decisions[i], errs[i] = pl.Place(snap, req)
		}()
		// Readers (non-reserving placements, checks) run alongside and
		// must neither block nor disturb the writers.
		go func() {
			defer wg.Done()
			look := req
			look.Reserve = false
			if d, err := pl.Place(snap, look); err != nil || d.Reservation != nil {
				t.Errorf("non-reserving placement: %+v, %v", d, err)
			}
			checkFit(t, pl, snap, "s1", req.Requirements)
		}()
	}
	wg.Wait()

	placed := 0
	perServer := map[string]int{}
	ids := map[string]bool{}
	for i, d := range decisions {
		if errs[i] != nil {
			t.Fatalf("placement %d: %v", i, errs[i])
		}
		if d.Chosen == "" {
			if d.Reservation != nil || d.Summary != "0/6 servers can take this deployment: 5 insufficient cpu, 1 wrong role" {
				t.Errorf("refused placement %d: %+v", i, d)
			}
			continue
		}
		placed++
		perServer[d.Chosen]++
		if d.Reservation == nil || d.Reservation.Server != d.Chosen || ids[d.Reservation.ID] {
			t.Errorf("placement %d: reservation %+v", i, d.Reservation)
			continue
		}
		ids[d.Reservation.ID] = true
	}
	if placed != 10 {
		t.Errorf("%d of %d placements succeeded, want exactly 10 (%v)", placed, n, perServer)
	}
	for s, k := range perServer {
		if k > 2 || s == "build" {
			t.Errorf("server %s got %d placements: over capacity", s, k)
		}
	}
	if got := len(pl.Store().List()); got != 10 {
		t.Errorf("store holds %d reservations", got)
	}
	// Every server is now at its limit for this size.
	if r := checkFit(t, pl, snap, "s0", req.Requirements); r.Fits || r.Reasons[0] != placement.ReasonInsufficientCPU {
		t.Errorf("check after filling: %+v", r)
	}
}

func TestPlacerIdempotency(t *testing.T) {
	dir := t.TempDir()
	c := placementtest.NewClock()
	pl := newPlacer(t, dir, c)
	snap := roomFor10()
	req := placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{CPU: 1.5}, Reserve: true, IdempotencyKey: "deploy-42", Organization: "acme"}

	// Concurrent retries of one request make one reservation.
	const n = 20
	var wg sync.WaitGroup
	decisions := make([]*placement.Decision, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := pl.Place(snap, req)
			if err != nil {
				t.Error(err)
				return
			}
			decisions[i] = d
		}()
	}
	wg.Wait()
	first := decisions[0]
	if first == nil || first.Reservation == nil {
		t.Fatalf("first = %+v", first)
	}
	replays := 0
	for _, d := range decisions {
		if d == nil {
			continue
		}
		if d.Chosen != first.Chosen || d.Reservation.ID != first.Reservation.ID || d.Summary != first.Summary {
			t.Errorf("retry answered %s/%s, first %s/%s", d.Chosen, d.Reservation.ID, first.Chosen, first.Reservation.ID)
		}
		if d.Replayed {
			replays++
		}
	}
	if replays != n-1 {
		t.Errorf("%d replays, want %d", replays, n-1)
	}
	if got := len(pl.Store().List()); got != 1 {
		t.Errorf("%d reservations for one idempotency key", got)
	}

	// Same key, different request: refused.
	other := req
	other.Requirements.CPU = 2
	if _, err := pl.Place(snap, other); !errors.Is(err, reservation.ErrIdempotencyConflict) {
		t.Errorf("reused key: err = %v", err)
	}

	// After a restart the key still answers with the same reservation,
	// confirmed state included.
	if _, err := pl.Confirm(first.Reservation.ID); err != nil {
		t.Fatal(err)
	}
	pl.Store().Close()
	pl2 := newPlacer(t, dir, c)
	d, err := pl2.Place(snap, req)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Replayed || d.Chosen != first.Chosen || d.Reservation.ID != first.Reservation.ID || d.Reservation.ConfirmedAt == nil || d.Summary != first.Summary {
		t.Errorf("replay after restart = %+v", d)
	}

	// Without reserve, the key seeds the tie-break: same snapshot, same server.
	plain := placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{CPU: 0.1}, IdempotencyKey: "check-7"}
	a, _ := pl2.Place(snap, plain)
	b, _ := pl2.Place(snap, plain)
	if a.Chosen == "" || a.Chosen != b.Chosen || a.Reservation != nil {
		t.Errorf("non-reserving idempotent placements: %q then %q", a.Chosen, b.Chosen)
	}
}

// quotaError is what an organization-quota admission would return.
type quotaError struct{ org string }

func (e *quotaError) Error() string { return "exceeded quota: " + e.org }

func TestPlacerAdmissionInsideCriticalSection(t *testing.T) {
	c := placementtest.NewClock()
	// The organization may hold 5 cores of reservations; each request is 1.
	limit := AdmissionFunc(func(in *AdmissionInput) error {
		var used placement.Cores
		for _, r := range in.Open {
			if r.Organization == in.Request.Organization {
				used += r.Resources.CPU
			}
		}
		if used+in.Request.Requirements.CPU > 5 {
			return &quotaError{org: in.Request.Organization}
		}
		if in.Decision.Chosen == "" || in.Snapshot == nil || in.Policy == nil {
			t.Error("admission input incomplete")
		}
		return nil
	})
	pl := newPlacer(t, t.TempDir(), c, limit)
	snap := roomFor10() // room for 10 × 1.5 cores; plenty for 20 × 1
	req := placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{CPU: 1}, Reserve: true, Organization: "acme"}

	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		placed, refused int
	)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := pl.Place(snap, req)
			mu.Lock()
			defer mu.Unlock()
			var qe *quotaError
			switch {
			case errors.As(err, &qe):
				refused++
			case err != nil:
				t.Error(err)
			case d.Reservation != nil:
				placed++
			}
		}()
	}
	wg.Wait()
	if placed != 5 || refused != 15 {
		t.Errorf("placed %d, refused %d; want 5 and 15", placed, refused)
	}
	// Another organization is not limited by acme's reservations.
	other := req
	other.Organization = "globex"
	if _, err := pl.Place(snap, other); err != nil {
		t.Errorf("other organization: %v", err)
	}
}

func TestPlacerReservationsExpireAndFreeRoom(t *testing.T) {
	c := placementtest.NewClock()
	pl := newPlacer(t, t.TempDir(), c)
	snap := placementtest.Fleet(placementtest.Server("only"))
	req := placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{CPU: 3}, Reserve: true, TTL: time.Minute}

	if d, err := pl.Place(snap, req); err != nil || d.Reservation == nil || !d.Reservation.ExpiresAt.Equal(placementtest.Now.Add(time.Minute)) {
		t.Fatalf("first = %+v, %v", d, err)
	}
	if d, _ := pl.Place(snap, req); d.Chosen != "" {
		t.Fatalf("second placement fit although the first holds the room: %+v", d)
	}
	if r := checkFit(t, pl, snap, "only", placement.Resources{CPU: 3}); r.Fits || r.Dimension(placement.DimensionCPU).Reserved != 3 {
		t.Errorf("check does not count the reservation: %+v", r)
	}
	c.Advance(time.Minute)
	if r := checkFit(t, pl, snap, "only", placement.Resources{CPU: 3}); !r.Fits || r.Dimension(placement.DimensionCPU).Reserved != 0 {
		t.Errorf("check still counts an expired reservation: %+v", r)
	}
	if d, _ := pl.Place(snap, placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{CPU: 3}}); d.Chosen != "only" {
		t.Errorf("non-reserving placement counts an expired reservation: %+v", d)
	}
	if d, _ := pl.Place(snap, req); d.Chosen != "only" {
		t.Errorf("room not freed by expiry: %+v", d)
	}

	// Default TTL from the policy.
	req.TTL = 0
	req.Requirements.CPU = 0.1
	d, err := pl.Place(snap, req)
	if err != nil || !d.Reservation.ExpiresAt.Equal(c.Now().Add(10*time.Minute)) {
		t.Errorf("default ttl: %+v, %v", d.Reservation, err)
	}
	if r := checkFit(t, pl, snap, "nope", placement.Resources{}); r.Reasons[0] != placement.ReasonServerNotFound {
		t.Errorf("check unknown server: %+v", r)
	}
}

func TestPlacerBuildReservationsQueued(t *testing.T) {
	c := placementtest.NewClock()
	pl := newPlacer(t, t.TempDir(), c)
	snap := roomFor10()
	d, err := pl.Place(snap, placement.Request{Kind: placement.KindBuild, Requirements: placement.Resources{Memory: placementtest.GiB}, Reserve: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.Chosen != "build" || d.Reservation.State != placement.StateQueued || d.Reservation.Kind != placement.KindBuild {
		t.Errorf("build placement = %+v", d)
	}
	if _, err := pl.Place(snap, placement.Request{Kind: "vm"}); err == nil {
		t.Error("invalid kind accepted")
	}
	if _, err := pl.Place(nil, placement.Request{Kind: placement.KindDeployment}); err == nil {
		t.Error("nil snapshot accepted")
	}
}

// checkFit runs Placer.Check for a deployment with the deployment decider.
func checkFit(t *testing.T, pl *Placer, snap *placement.Snapshot, server string, req placement.Resources) placement.FitResult {
	t.Helper()
	r, err := pl.Check(snap, server, placement.Request{Kind: placement.KindDeployment, Requirements: req}, DeploymentDecider)
	if err != nil {
		t.Errorf("check %s: %v", server, err)
	}
	return r
}

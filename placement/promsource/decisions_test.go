package promsource

import (
	"github.com/berth-dev/berth/placement/fit"
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/reservation"
	"github.com/berth-dev/berth/placement/schedule"

	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/berth-dev/berth/internal/fleetsim"
	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/placement"
)

// staticPolicy is a schedule.PolicySource that never changes.
type staticPolicy struct{ p *policy.Policy }

func (s staticPolicy) Policy() *policy.Policy { return s.p }

// rejections maps each rejected server to its reasons.
func rejections(d *placement.Decision) map[string][]placement.Reason {
	out := map[string][]placement.Reason{}
	for _, r := range d.Rejected {
		out[r.Server] = r.Reasons
	}
	return out
}

// sameDecisions runs the decision code over an embedded and a remote
// snapshot of the same fleet (testFleet): each request must choose the same
// server, rank the same servers in the same order and reject the same
// servers for the same reasons on both — and the answers are the ones the
// fleet's spec implies, so two equally wrong sources cannot pass.
func sameDecisions(t *testing.T, ctx context.Context, emb, rem *Snapshotter, spec fleetsim.Spec) {
	embSnap, err := emb.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	remSnap, err := rem.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := policy.Default()
	small := placement.Resources{CPU: 0.5, Memory: 256 * mib, Disk: 1e9}
	wrongRole := []placement.Reason{placement.ReasonWrongRole}
	tests := []struct {
		name     string
		req      placement.Request
		chosen   string
		rejected map[string][]placement.Reason
	}{
		// Spread: app-2 has clearly more room left (≈57 vs ≈44 points).
		{"small spread", placement.Request{Requirements: small}, "app-2",
			map[string][]placement.Reason{"build-1": wrongRole}},
		{"small pack", placement.Request{Requirements: small, Strategy: placement.StrategyPack}, "app-1",
			map[string][]placement.Reason{"build-1": wrongRole}},
		// app-1 has ≈4.9 GiB of its 7.2 usable left, app-2 ≈2.4 of 3.6.
		{"4Gi memory", placement.Request{Requirements: placement.Resources{Memory: 4 * gib}}, "app-1",
			map[string][]placement.Reason{"build-1": wrongRole, "app-2": {placement.ReasonInsufficientMemory}}},
		{"1000 cores", placement.Request{Requirements: placement.Resources{CPU: 1000}}, "",
			map[string][]placement.Reason{"build-1": wrongRole, "app-1": {placement.ReasonInsufficientCPU}, "app-2": {placement.ReasonInsufficientCPU}}},
		// app-2 has 40 GB free on disk: 45 GB does not fit physically;
		// 35 GB would, but would end above its 80 % threshold.
		{"45GB disk", placement.Request{Requirements: placement.Resources{Disk: 45e9}}, "app-1",
			map[string][]placement.Reason{"build-1": wrongRole, "app-2": {placement.ReasonInsufficientDisk}}},
		{"35GB disk", placement.Request{Requirements: placement.Resources{Disk: 35e9}}, "app-1",
			map[string][]placement.Reason{"build-1": wrongRole, "app-2": {placement.ReasonDiskThreshold}}},
		{"other organization", placement.Request{Requirements: small, Organization: "globex"}, "",
			map[string][]placement.Reason{"build-1": wrongRole, "app-1": {placement.ReasonWrongOrganization}, "app-2": {placement.ReasonWrongOrganization}}},
	}
	for _, tc := range tests {
		tc.req.Kind = placement.KindDeployment
		for _, seed := range []uint64{1, 42} {
			e := schedule.Choose(p, embSnap, &tc.req, nil, seed)
			r := schedule.Choose(p, remSnap, &tc.req, nil, seed)
			ranking := func(d *placement.Decision) []string {
				var names []string
				for _, rk := range d.Ranking {
					names = append(names, rk.Server)
				}
				return names
			}
			if e.Chosen != tc.chosen || r.Chosen != tc.chosen {
				t.Errorf("%s (seed %d): chosen embedded %q, remote %q; want %q", tc.name, seed, e.Chosen, r.Chosen, tc.chosen)
			}
			if !slices.Equal(ranking(e), ranking(r)) {
				t.Errorf("%s (seed %d): ranking embedded %v, remote %v", tc.name, seed, ranking(e), ranking(r))
			}
			want := fmt.Sprint(tc.rejected)
			if got := fmt.Sprint(rejections(e)); got != want {
				t.Errorf("%s: embedded rejected %s, want %s", tc.name, got, want)
			}
			if got := fmt.Sprint(rejections(r)); got != want {
				t.Errorf("%s: remote rejected %s, want %s", tc.name, got, want)
			}
			if e.Summary != r.Summary {
				t.Errorf("%s: summary embedded %q, remote %q", tc.name, e.Summary, r.Summary)
			}
		}
		// FitServer, server by server, as /placements/check asks it.
		for _, s := range spec.Servers {
			e := fit.Server(p, s.Name, embSnap.Servers[s.Name], tc.req.Kind, tc.req.Requirements, placement.Resources{})
			r := fit.Server(p, s.Name, remSnap.Servers[s.Name], tc.req.Kind, tc.req.Requirements, placement.Resources{})
			if e.Fits != r.Fits || !slices.Equal(e.Reasons, r.Reasons) || e.Freshness != r.Freshness {
				t.Errorf("%s: FitServer(%s) embedded %v %v %s, remote %v %v %s", tc.name, s.Name,
					e.Fits, e.Reasons, e.Freshness, r.Fits, r.Reasons, r.Freshness)
			}
		}
	}
}

// observedRelease reserves and confirms a deployment of a new application
// on server, then makes the server run it: the reservation must go as soon
// as a snapshot shows the container, long before the confirm grace, and not
// before.
func observedRelease(t *testing.T, ctx context.Context, snapshots *Snapshotter, server *fleetsim.Server) {
	store, err := reservation.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	pol := policy.Default()
	reg := prometheus.NewRegistry()
	src, err := reservation.NewReleasingSource(snapshots, store, testenv.Logger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	placer := schedule.NewPlacer(staticPolicy{pol}, store)

	const app = "77"
	snap, err := src.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := snap.Servers[server.Name()].Applications[app]; n != 0 {
		t.Fatalf("application %s already runs on %s (%d)", app, server.Name(), n)
	}
	d, err := placer.Place(snap, placement.Request{
		Kind: placement.KindDeployment, ApplicationID: app, Organization: "acme", Reserve: true,
		Candidates:   []string{server.Name()},
		Requirements: placement.Resources{CPU: 0.25, Memory: 128 * mib},
	})
	if err != nil || d.Reservation == nil {
		t.Fatalf("placement: %+v, %v", d, err)
	}
	res, err := placer.Confirm(d.Reservation.ID)
	if err != nil {
		t.Fatal(err)
	}
	graceEnd := res.ConfirmedAt.Add(pol.Reservations.ConfirmGrace)

	// Snapshots scraped after the confirmation, without the container:
	// the reservation holds.
	deadline := time.Now().Add(20 * time.Second)
	for {
		snap, err = src.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if snap.Servers[server.Name()].LastSeen.After(*res.ConfirmedAt) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scrape of %s after the confirmation", server.Name())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := store.Get(res.ID); err != nil {
		t.Fatalf("reservation gone before its application ran: %v", err)
	}

	container := fleetsim.ContainerSpec{
		Name: "app77-web", Image: "ghcr.io/acme/app77:1", ApplicationID: app, Managed: true, Role: "app",
		CPULimitCores: 0.25, MemoryLimitBytes: 128 * mib, CPUUsageCores: 0.01, MemoryWorkingSetBytes: 20 * mib,
	}
	if err := server.Update(func(s *fleetsim.ServerSpec) { s.Containers = append(s.Containers, container) }); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := server.Update(func(s *fleetsim.ServerSpec) {
			s.Containers = slices.DeleteFunc(s.Containers, func(c fleetsim.ContainerSpec) bool { return c.Name == container.Name })
		}); err != nil {
			t.Error(err)
		}
	}()

	deadline = time.Now().Add(30 * time.Second)
	for {
		snap, err = src.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Get(res.ID); errors.Is(err, reservation.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reservation still open 30s after %s ran application %s; applications seen: %v",
				server.Name(), app, snap.Servers[server.Name()].Applications)
		}
		time.Sleep(200 * time.Millisecond)
	}
	released := time.Now()
	if !released.Before(graceEnd) {
		t.Errorf("released at %s, not before the grace ended (%s)", released, graceEnd)
	}
	if n := snap.Servers[server.Name()].Applications[app]; n != 1 {
		t.Errorf("releasing snapshot shows application %s %d times on %s, want 1", app, n, server.Name())
	}
	const want = `
# HELP berth_placement_reservations_observed_total Confirmed deployment reservations released because a fleet snapshot showed their application running on the reserved server.
# TYPE berth_placement_reservations_observed_total counter
berth_placement_reservations_observed_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	t.Logf("released %s after the confirmation; the grace would have ended at %s", released.Sub(*res.ConfirmedAt).Round(time.Millisecond), graceEnd.Format(time.TimeOnly))
}

// staleReason: with a short freshness.fresh, a server that stopped
// answering (and whose age is past fresh, far below stale) is refused with
// exactly metrics_stale — not metrics_missing, although its signals are
// gone — by FitServer and by Choose.
func staleReason(t *testing.T, ctx context.Context, mode string, snapshots *Snapshotter) {
	t.Helper()
	p := policy.Default()
	p.Freshness.Fresh = 2 * time.Second
	p.Freshness.Stale = 10 * time.Minute
	snap, err := snapshots.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := snap.Servers["app-2"]
	if st == nil || st.Age <= p.Freshness.Fresh || st.Age >= p.Freshness.Stale {
		t.Fatalf("%s: app-2 age %v, want between %s and %s", mode, st.Age, p.Freshness.Fresh, p.Freshness.Stale)
	}
	req := placement.Resources{CPU: 0.1, Memory: 64 * mib}
	fit := fit.Server(p, "app-2", st, placement.KindDeployment, req, placement.Resources{})
	if fit.Fits || fit.Freshness != placement.Stale || !slices.Equal(fit.Reasons, []placement.Reason{placement.ReasonMetricsStale}) {
		t.Errorf("%s: stale app-2 (age %v, missing %d signals): fits %v, freshness %s, reasons %v; want exactly [metrics_stale]",
			mode, st.Age, len(st.Missing), fit.Fits, fit.Freshness, fit.Reasons)
	}
	d := schedule.Choose(p, snap, &placement.Request{Kind: placement.KindDeployment, Requirements: req}, nil, 1)
	if got := rejections(d)["app-2"]; !slices.Equal(got, []placement.Reason{placement.ReasonMetricsStale}) {
		t.Errorf("%s: Choose rejected app-2 for %v, want [metrics_stale]", mode, got)
	}
	if d.Chosen == "app-2" || !strings.Contains(d.Summary, "metrics stale") || strings.Contains(d.Summary, "metrics missing") {
		t.Errorf("%s: decision chose %q, summary %q", mode, d.Chosen, d.Summary)
	}
}

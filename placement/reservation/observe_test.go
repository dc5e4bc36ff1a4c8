package reservation

import (
	"github.com/berth-dev/berth/internal/placementtest"
	"github.com/berth-dev/berth/placement"

	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fixedSource hands out one snapshot (or an error) until changed.
type fixedSource struct {
	snap *placement.Snapshot
	err  error
}

func (f *fixedSource) Snapshot(context.Context) (*placement.Snapshot, error) { return f.snap, f.err }

func TestObserved(t *testing.T) {
	confirmed := placementtest.Now.Add(-time.Minute)
	before, after := confirmed.Add(-time.Second), confirmed.Add(time.Second)
	snap := &placement.Snapshot{Taken: placementtest.Now, Servers: map[string]*placement.ServerState{
		"a":     {Name: "a", LastSeen: after, Applications: map[string]int{"7": 1, "8": 2}},
		"b":     {Name: "b", LastSeen: after},
		"lagg":  {Name: "lagg", LastSeen: before, Applications: map[string]int{"7": 1}},
		"exact": {Name: "exact", LastSeen: confirmed, Applications: map[string]int{"7": 1}},
	}}
	res := func(id string, kind placement.Kind, server, app string, confirmedAt *time.Time) placement.Reservation {
		return placement.Reservation{ID: id, Kind: kind, Server: server, ApplicationID: app, ConfirmedAt: confirmedAt}
	}
	open := []placement.Reservation{
		res("runs", placement.KindDeployment, "a", "7", &confirmed),
		res("runs-too", placement.KindDeployment, "a", "8", &confirmed),
		res("unconfirmed", placement.KindDeployment, "a", "7", nil),
		res("other-app", placement.KindDeployment, "a", "9", &confirmed),
		res("other-server", placement.KindDeployment, "b", "7", &confirmed),
		res("scraped-before-confirm", placement.KindDeployment, "lagg", "7", &confirmed),
		res("scraped-at-confirm", placement.KindDeployment, "exact", "7", &confirmed),
		res("no-application", placement.KindDeployment, "a", "", &confirmed),
		res("unknown-server", placement.KindDeployment, "gone", "7", &confirmed),
		res("build", placement.KindBuild, "a", "7", &confirmed),
	}
	var ids []string
	for _, r := range Observed(snap, open) {
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, []string{"runs", "runs-too"}) {
		t.Errorf("observed %v, want [runs runs-too]", ids)
	}
	if got := Observed(nil, open); len(got) != 0 {
		t.Errorf("nil snapshot: observed %v", got)
	}
}

func TestReleasingSource(t *testing.T) {
	c := placementtest.NewClock()
	store := openStore(t, t.TempDir(), c)
	const grace = 5 * time.Minute
	place := func(server, app string) placement.Reservation {
		return insert(t, store, placement.Reservation{Kind: placement.KindDeployment, Server: server, ApplicationID: app, State: placement.StateActive,
			Resources: placement.Resources{CPU: 1, Memory: 1 << 30}})
	}
	confirm := func(r placement.Reservation) placement.Reservation {
		t.Helper()
		r, err := store.Confirm(r.ID, grace)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	web := confirm(place("a", "7"))
	pending := place("a", "7") // deployed but not confirmed yet
	api := confirm(place("a", "8"))
	c.Advance(10 * time.Second)

	src := &fixedSource{snap: &placement.Snapshot{Taken: c.Now(), Servers: map[string]*placement.ServerState{
		"a": {Name: "a", LastSeen: c.Now().Add(-time.Second), Applications: map[string]int{"7": 1}},
	}}}
	reg := prometheus.NewRegistry()
	rs, err := NewReleasingSource(src, store, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	open := func() []string {
		var ids []string
		for _, r := range store.List() {
			ids = append(ids, r.ID)
		}
		slices.Sort(ids)
		return ids
	}
	want := func(ids ...string) []string { slices.Sort(ids); return ids }

	snap, err := rs.Snapshot(context.Background())
	if err != nil || snap != src.snap {
		t.Fatalf("snapshot %p, %v; want the wrapped source's %p", snap, err, src.snap)
	}
	if got := open(); !slices.Equal(got, want(pending.ID, api.ID)) {
		t.Errorf("after the first snapshot open %v, want %v (web %s released)", got, want(pending.ID, api.ID), web.ID)
	}
	if _, err := store.Get(web.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("web reservation still open: %v", err)
	}
	if got := testutil.ToFloat64(rs.released); got != 1 {
		t.Errorf("berth_placement_reservations_observed_total = %v, want 1", got)
	}

	// The same snapshot again is not looked at twice: confirming the
	// pending reservation now does not release it from old data.
	confirm(pending)
	if _, err := rs.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := open(); !slices.Equal(got, want(pending.ID, api.ID)) {
		t.Errorf("cached snapshot: open %v", got)
	}

	// A failing source fails the same way and releases nothing.
	src.err = errors.New("prometheus down")
	if snap, err := rs.Snapshot(context.Background()); err == nil || snap != nil || err.Error() != "prometheus down" {
		t.Errorf("failing source: %v, %v", snap, err)
	}

	// A new snapshot, scraped after the second confirmation, shows both
	// applications: the rest goes.
	c.Advance(10 * time.Second)
	src.err = nil
	src.snap = &placement.Snapshot{Taken: c.Now(), Servers: map[string]*placement.ServerState{
		"a": {Name: "a", LastSeen: c.Now().Add(-time.Second), Applications: map[string]int{"7": 2, "8": 1}},
	}}
	if _, err := rs.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := open(); len(got) != 0 {
		t.Errorf("open %v, want none", got)
	}
	want3 := `
# HELP berth_placement_reservations_observed_total Confirmed deployment reservations released because a fleet snapshot showed their application running on the reserved server.
# TYPE berth_placement_reservations_observed_total counter
berth_placement_reservations_observed_total 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want3), "berth_placement_reservations_observed_total"); err != nil {
		t.Error(err)
	}
	if _, err := NewReleasingSource(src, store, nil, reg); err == nil {
		t.Error("registering the metric twice: no error")
	}
}

package promsource

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
)

func sample(value float64, labels ...string) *model.Sample {
	m := model.Metric{}
	for i := 0; i+1 < len(labels); i += 2 {
		m[model.LabelName(labels[i])] = model.LabelValue(labels[i+1])
	}
	return &model.Sample{Metric: m, Value: model.SampleValue(value)}
}

func TestAssemble(t *testing.T) {
	taken := time.Unix(1_000_000, 0)
	id := func(server, role, org string) []string {
		return []string{"server", server, "role", role, "organization", org}
	}
	rule := func(name string, v float64, ls []string) *model.Sample {
		return sample(v, append([]string{"__name__", name}, ls...)...)
	}
	full := id("a", "app", "acme")
	var rulesVec model.Vector
	rulesVec = append(rulesVec, rule(infoRule, 1, full), rule(answeringRule, 2, full))
	for name := range serverSignals {
		rulesVec = append(rulesVec, rule(name, 2, full))
	}
	rulesVec = append(rulesVec,
		rule("server:node_cpus:count", 8, full),
		// A server whose target stopped answering keeps only the
		// info rule; its role changed in the last hour.
		rule(infoRule, 1, id("b", "build", "")),
		rule("server:node_memory_total:bytes", math.NaN(), id("b", "app", "")),
		rule("server:ignored_by_placement:ratio", 5, full),
		rule("server_mountpoint:node_filesystem_size:bytes", 5, full),
		// Organization rules are for dashboards and alerts: placement
		// sums its servers' managed usage itself.
		rule("organization:container_spec_cpu_cores:sum", 2.5, []string{"organization", "acme"}),
		rule(serverApplicationsRule, 2, append([]string{"application_id", "7"}, full...)),
		rule(serverApplicationsRule, 1, append([]string{"application_id", "3"}, full...)),
		rule(serverApplicationsRule, 0, append([]string{"application_id", "9"}, full...)),
		rule(serverApplicationsRule, 4, full), // no application: ignored
	)
	seen := model.Vector{
		sample(float64(taken.Unix()-2), full...),
		sample(float64(taken.Unix()-600), id("b", "app", "")...),
		sample(float64(taken.Unix()-900), id("b", "build", "")...),
	}
	snap := assemble(taken, rulesVec, seen)
	finish(snap)

	a := snap.Servers["a"]
	if a == nil || a.Role != "app" || a.Organization != "acme" {
		t.Fatalf("server a: %+v", a)
	}
	if len(a.Missing) != 0 {
		t.Errorf("server a missing %v", a.Missing)
	}
	if a.Silent {
		t.Error("server a answers (its sample-age rule is there) but is marked silent")
	}
	if b := snap.Servers["b"]; b == nil || !b.Silent {
		t.Errorf("server b stopped answering (last seen, no sample-age rule) but is not marked silent: %+v", b)
	}
	if a.CPU.Cores != 8 || a.Memory.TotalBytes != 2 || a.Containers.Running != 2 {
		t.Errorf("server a values: %+v", a)
	}
	if fmt.Sprint(a.Applications) != "map[3:1 7:2]" {
		t.Errorf("server a applications %v, want map[3:1 7:2]", a.Applications)
	}
	if a.Age != 2*time.Second || !a.LastSeen.Equal(taken.Add(-2*time.Second)) {
		t.Errorf("server a age %v, last seen %v", a.Age, a.LastSeen)
	}
	b := snap.Servers["b"]
	if b == nil || b.Role != "build" {
		t.Fatalf("server b: %+v", b)
	}
	if b.Age != 600*time.Second {
		t.Errorf("server b age %v, want the newest last-seen (600s)", b.Age)
	}
	if b.Applications != nil {
		t.Errorf("server b applications %v, want none", b.Applications)
	}
	if len(b.Missing) != len(serverSignals) || slices.Contains(b.Missing, lastSeenRule) || !slices.IsSorted(b.Missing) {
		t.Errorf("server b missing %v", b.Missing)
	}
	if len(snap.Servers) != 2 {
		t.Errorf("servers: %v", snap.Servers)
	}
	acme := snap.Organizations["acme"]
	if acme == nil || acme.Servers != 1 || acme.LimitedCPUCores != 2 || acme.Applications != 2 || !slices.Equal(acme.ApplicationIDs, []string{"3", "7"}) {
		t.Errorf("acme: %+v", acme)
	}
	if len(snap.Organizations) != 1 {
		t.Errorf("organizations: %v", snap.Organizations)
	}

	// A server known only from its rules has no age, and says so.
	snap = assemble(taken, model.Vector{rule("server:node_cpus:count", 2, id("c", "app", ""))}, nil)
	if c := snap.Servers["c"]; c == nil || !c.LastSeen.IsZero() || !slices.Contains(c.Missing, lastSeenRule) {
		t.Errorf("server c: %+v", c)
	}
}

// fakeQuerier stands in for Prometheus in the Snapshotter's cache and
// single-flight tests: it counts calls, can block and can fail.
type fakeQuerier struct {
	calls   atomic.Int64
	fail    atomic.Bool
	release chan struct{}
}

func (f *fakeQuerier) Query(ctx context.Context, q string, ts time.Time) (model.Vector, error) {
	f.calls.Add(1)
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.fail.Load() {
		return nil, errors.New("connection refused")
	}
	if q == lastSeenQuery {
		return model.Vector{sample(float64(ts.Unix()), "server", "a", "role", "app")}, nil
	}
	// An answering server: it costs no last-known query.
	v := model.Vector{sample(1, "__name__", answeringRule, "server", "a", "role", "app")}
	for name := range serverSignals {
		v = append(v, sample(4, "__name__", name, "server", "a", "role", "app"))
	}
	return v, nil
}

func TestSnapshotterCachesSharesAndFails(t *testing.T) {
	q := &fakeQuerier{}
	reg := prometheus.NewRegistry()
	s, err := NewSnapshotter(q, SnapshotterOptions{TTL: time.Hour}, promslog.NewNopLogger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(5000, 0)
	s.now = func() time.Time { return now }
	ctx := context.Background()

	first, err := s.Snapshot(ctx)
	if err != nil || first.Servers["a"].CPU.Cores != 4 {
		t.Fatalf("snapshot: %+v, %v", first, err)
	}
	if q.calls.Load() != QueriesPerSnapshot || s.Queries() != QueriesPerSnapshot {
		t.Errorf("%d calls, %d counted, want %d", q.calls.Load(), s.Queries(), QueriesPerSnapshot)
	}
	if again, _ := s.Snapshot(ctx); again != first || q.calls.Load() != QueriesPerSnapshot {
		t.Error("a snapshot within the TTL was fetched again")
	}
	if got := gaugeValue(t, reg, "berth_placement_source_up"); got != 1 {
		t.Errorf("source_up %v", got)
	}

	// TTL passed: concurrent callers share one fetch.
	now = now.Add(2 * time.Hour)
	q.release = make(chan struct{})
	var wg sync.WaitGroup
	results := make([]error, 20)
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); _, results[i] = s.Snapshot(ctx) }()
	}
	// One waiter gives up: the fetch goes on for the others.
	short, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Snapshot(short); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled caller: %v", err)
	}
	for q.calls.Load() < 2*QueriesPerSnapshot {
		time.Sleep(time.Millisecond)
	}
	close(q.release)
	wg.Wait()
	for _, err := range results {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s.Fetches() != 2 || q.calls.Load() != 2*QueriesPerSnapshot {
		t.Errorf("21 concurrent callers: %d fetches, %d calls; want 2 fetches in all", s.Fetches(), q.calls.Load())
	}
	q.release = nil

	// Between one and two TTLs: the cached snapshot is served at once while
	// one background fetch replaces it.
	cached, _ := s.Snapshot(ctx)
	now = now.Add(90 * time.Minute)
	q.release = make(chan struct{})
	for range 5 {
		if snap, err := s.Snapshot(ctx); err != nil || snap != cached {
			t.Fatalf("refresh-ahead window: %p, %v; want the cached snapshot", snap, err)
		}
	}
	close(q.release)
	for s.Fetches() != 3 {
		time.Sleep(time.Millisecond)
	}
	for {
		snap, _ := s.Snapshot(ctx)
		if snap != cached {
			break
		}
		time.Sleep(time.Millisecond)
	}
	q.release = nil

	// Prometheus down after two TTLs: an error, never the old snapshot.
	now = now.Add(2 * time.Hour)
	q.fail.Store(true)
	if snap, err := s.Snapshot(ctx); err == nil {
		t.Fatalf("failing querier gave %+v", snap)
	}
	if got := gaugeValue(t, reg, "berth_placement_source_up"); got != 0 {
		t.Errorf("source_up %v, want 0", got)
	}
	if got := gaugeValue(t, reg, "berth_placement_snapshot_age_seconds"); got != (2 * time.Hour).Seconds() {
		t.Errorf("snapshot age %v, want the age of the last good one (7200)", got)
	}
	if snap, err := s.Snapshot(ctx); err == nil {
		t.Fatalf("failing querier gave %+v on the second try", snap)
	}
	q.fail.Store(false)
	if _, err := s.Snapshot(ctx); err != nil {
		t.Errorf("recovered querier: %v", err)
	}

	if _, err := NewSnapshotter(q, SnapshotterOptions{}, promslog.NewNopLogger(), reg); err == nil {
		t.Error("registering the snapshot metrics twice on one registry succeeded")
	}
	if _, err := NewSnapshotter(q, SnapshotterOptions{TTL: -1}, promslog.NewNopLogger(), prometheus.NewRegistry()); err == nil {
		t.Error("negative TTL accepted")
	}
}

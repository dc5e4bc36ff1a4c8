// Package bench holds placement's end-to-end benchmarks: Berth's decision
// (fleet snapshot + reserving placement) against the naive per-server
// strategy over simulated fleets and the embedded Prometheus, and the
// decision code alone. See docs/performance.md.
package bench

import (
	"github.com/berth-dev/berth/placement/fit"
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/quota"
	"github.com/berth-dev/berth/placement/reservation"
	"github.com/berth-dev/berth/placement/schedule"

	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"

	"github.com/berth-dev/berth/internal/fleetsim"
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/embedded"
	"github.com/berth-dev/berth/placement/promsource"
	berthrules "github.com/berth-dev/berth/rules"
)

// Fleet and store settings. The scrape interval is shorter than
// production's 15s so the fleet is complete within half a minute; the shipped
// rules' windows shrink to match (as placement/promsource's tests do), so the
// rates read plausible values after a few scrapes. 10s keeps the ingestion
// of 1000 simulated servers from saturating the 2-core machine while the
// decisions are measured.
const (
	scrapeInterval = 10 * time.Second
	freshTimeout   = 2 * time.Minute
)

var windows = strings.NewReplacer("[5m]", "[30s]", "[15m]", "[1m]")

// request is a small deployment: the fleet never fills up with it, so every
// decision does the full work (fit, score, rank every server, reserve).
var request = placement.Resources{CPU: 0.25, Memory: 128 << 20, Disk: 256 << 20}

// reservationTTL bounds the open reservations: each decision reserves, and
// expired ones are dropped on the next write, so about rate × TTL stay
// open (≈ 50–150, deployments in flight) and the store's whole-set rewrite
// stays the size it has in service instead of growing with the run.
const reservationTTL = 250 * time.Millisecond

// stack is one simulated fleet scraped by the embedded Prometheus with the
// shipped rules.
type stack struct {
	servers  int
	names    []string // every simulated server, for the naive strategy
	embedded *embedded.Prometheus
}

func startStack(b *testing.B, n int) *stack {
	b.Helper()
	spec, err := fleetsim.Generate(fleetsim.GenerateOptions{Servers: n, BuildServers: n / 10, Organizations: 5, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	fleet, err := fleetsim.Start(ctx, spec, fleetsim.ListenConfig{})
	if err != nil {
		b.Skipf("cannot start a simulated fleet of %d servers on loopback: %v", n, err)
	}
	b.Cleanup(fleet.Close)

	dir := b.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	if err := writeRules(rulesDir); err != nil {
		b.Fatal(err)
	}
	sd := filepath.Join(dir, "fleet.json")
	if err := fleet.WriteFileSD(sd); err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fleetsim.ScrapeConfig("fleet", sd, scrapeInterval)), 0o644); err != nil {
		b.Fatal(err)
	}
	e, err := embedded.New(embedded.Config{
		StoragePath: filepath.Join(dir, "tsdb"), ConfigFile: cfg,
		RuleFiles: []string{filepath.Join(rulesDir, "*.rules.yml")},
	}, promslog.NewNopLogger(), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Stop() })

	st := &stack{servers: n, embedded: e}
	for _, s := range spec.Servers {
		st.names = append(st.names, s.Name)
	}
	st.waitFresh(b)
	return st
}

// writeRules writes the shipped rules with their windows shrunk.
func writeRules(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return berthrules.WriteTo(dir, windows.Replace)
}

// waitFresh polls until every simulated server is fresh with every signal
// fit needs, so decisions compare real numbers.
func (st *stack) waitFresh(b *testing.B) {
	b.Helper()
	s, err := promsource.NewSnapshotter(st.embedded, promsource.SnapshotterOptions{}, promslog.NewNopLogger(), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	p := policy.Default()
	deadline := time.Now().Add(freshTimeout)
	var last string
	for {
		snap, err := s.Snapshot(context.Background())
		if err != nil {
			last = err.Error()
		} else {
			fresh := 0
			for _, srv := range snap.Servers {
				if fit.FreshnessOf(p, srv) == placement.Fresh {
					fresh++
				} else {
					last = fmt.Sprintf("%s is %s (missing %v)", srv.Name, fit.FreshnessOf(p, srv), srv.Missing)
				}
			}
			if len(snap.Servers) == st.servers && fresh == st.servers {
				return
			}
			last = fmt.Sprintf("%d/%d servers fresh; %s", fresh, st.servers, last)
		}
		if time.Now().After(deadline) {
			b.Fatalf("fleet of %d never fresh within %s: %s", st.servers, freshTimeout, last)
		}
		time.Sleep(time.Second)
	}
}

// decider makes one decision and says how many PromQL queries it made so
// far in total (a monotonic counter).
type decider interface {
	decide(ctx context.Context) error
	queries() uint64
}

// berth is Berth's strategy as the service runs it: a fleet snapshot from
// the Snapshotter (QueriesPerSnapshot vector queries, cached for ttl), then
// Placer.Place with a reservation, organization quotas admitted inside the
// critical section.
type berth struct {
	snaps   *promsource.Snapshotter
	placer  *schedule.Placer
	reserve bool
}

func newBerth(b *testing.B, st *stack, ttl time.Duration, reserve bool) *berth {
	b.Helper()
	snaps, err := promsource.NewSnapshotter(st.embedded, promsource.SnapshotterOptions{TTL: ttl}, promslog.NewNopLogger(), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	store, err := reservation.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	// As berth-placement runs by default (--storage.reservations.sync-interval=1s):
	// written before each answer, fsynced once a second.
	store.SyncEvery(time.Second, nil)
	b.Cleanup(func() { _ = store.Close() })
	policies := policy.NewStaticStore(policy.Default())
	return &berth{snaps: snaps, placer: schedule.NewPlacer(policies, store, quota.Admission()), reserve: reserve}
}

func (s *berth) decide(ctx context.Context) error {
	snap, err := s.snaps.Snapshot(ctx)
	if err != nil {
		return err
	}
	d, err := s.placer.Place(snap, placement.Request{
		Kind: placement.KindDeployment, Requirements: request, Reserve: s.reserve, TTL: reservationTTL,
	})
	if err != nil {
		return err
	}
	if d.Chosen == "" || (s.reserve && d.Reservation == nil) {
		return fmt.Errorf("no server chosen: %s", d.Summary)
	}
	return nil
}

func (s *berth) queries() uint64 { return s.snaps.Queries() }

// naive is the seed's proposal translated to PromQL: per decision, ask each
// server for its signals in turn (one query per server, by server name, over
// the same recording rules Berth reads — cheaper for Prometheus than the raw
// node_* series), compare one CPU sample and the free memory and disk with
// the request, and take the server with the most free CPU. It has no
// freshness check, no declared allocations and no reservations: it is only
// here to be timed.
type naive struct {
	q       promsource.Querier
	names   []string
	counter atomic.Uint64
}

const naiveSignals = `server:node_cpus:count|server:node_cpu_utilisation:rate5m|server:node_memory_available:bytes|server:node_filesystem_avail:bytes_root`

func (s *naive) decide(ctx context.Context) error {
	best, bestFree := "", -1.0
	for _, name := range s.names {
		s.counter.Add(1)
		v, err := s.q.Query(ctx, `{__name__=~"`+naiveSignals+`",server="`+name+`"}`, time.Now())
		if err != nil {
			return fmt.Errorf("query %s: %w", name, err)
		}
		var cores, util, mem, disk float64
		for _, sample := range v {
			switch sample.Metric[model.MetricNameLabel] {
			case "server:node_cpus:count":
				cores = float64(sample.Value)
			case "server:node_cpu_utilisation:rate5m":
				util = float64(sample.Value)
			case "server:node_memory_available:bytes":
				mem = float64(sample.Value)
			case "server:node_filesystem_avail:bytes_root":
				disk = float64(sample.Value)
			}
		}
		free := cores * (1 - util)
		if free >= float64(request.CPU) && mem >= float64(request.Memory) && disk >= float64(request.Disk) && free > bestFree {
			best, bestFree = name, free
		}
	}
	if best == "" {
		return fmt.Errorf("naive: no server fits")
	}
	return nil
}

func (s *naive) queries() uint64 { return s.counter.Load() }

// result is what one strategy measured.
type result struct {
	decisions   int
	elapsed     time.Duration
	p50, p99    time.Duration
	perDecision float64 // PromQL queries
}

func (r result) rate() float64 { return float64(r.decisions) / r.elapsed.Seconds() }

// measure makes decisions with workers concurrent callers, b.N × perOp in
// all, timing each one. One benchmark op is perOp decisions, so that even
// `-benchtime 20x` gives enough samples for a p99; the metrics reported are
// per decision.
func measure(b *testing.B, d decider, workers, perOp int) result {
	ctx := context.Background()
	total := b.N * perOp
	lat := make([]time.Duration, total)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	q0 := d.queries()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= total || failed.Load() != nil {
					return
				}
				t0 := time.Now()
				if err := d.decide(ctx); err != nil {
					failed.Store(&err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	slices.Sort(lat)
	r := result{
		decisions: total, elapsed: elapsed,
		p50: percentile(lat, 0.50), p99: percentile(lat, 0.99),
		perDecision: float64(d.queries()-q0) / float64(total),
	}
	b.ReportMetric(ms(r.p50), "p50-ms")
	b.ReportMetric(ms(r.p99), "p99-ms")
	b.ReportMetric(r.rate(), "decisions/s")
	b.ReportMetric(r.perDecision, "queries/decision")
	return r
}

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkPlacementDecision compares, over the same simulated fleet and
// embedded store, Berth's decision (fleet snapshot + reserving placement)
// with the naive per-server strategy, sequentially and with GOMAXPROCS
// concurrent callers, at 100 and 1000 servers. Ratios are reported on the
// naive sub-benchmarks (naive ÷ Berth for latency and queries, Berth ÷
// naive for throughput) and a table is logged per fleet size.
func BenchmarkPlacementDecision(b *testing.B) {
	if testing.Short() {
		b.Skip("starts simulated fleets and an embedded Prometheus; skipped with -short")
	}
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			start := time.Now()
			st := startStack(b, n)
			fmt.Printf("%d servers: fleet started, scraped and fresh in %s\n", n, time.Since(start).Round(time.Second))
			benchFleet(b, st)
		})
	}
}

// perOp is the decisions per benchmark op, by strategy: a few hundred
// milliseconds per op, so that `make bench` (-benchtime 20x) takes about a
// minute per fleet size and still times thousands of cached decisions.
func perOp(strategy string, servers int) int {
	switch strategy {
	case "berth", "berth-noreserve":
		return 100
	case "berth-ttl=0": // a snapshot fetch per decision
		if servers <= 100 {
			return 20
		}
		return 3
	default: // naive: one query per server per decision
		if servers <= 100 {
			return 10
		}
		return 2
	}
}

func benchFleet(b *testing.B, st *stack) {
	workers := runtime.GOMAXPROCS(0)
	results := map[string]result{}
	type strategy struct {
		name string
		new  func(b *testing.B) decider
	}
	strategies := []strategy{
		{"berth", func(b *testing.B) decider { return newBerth(b, st, promsource.DefaultSnapshotTTL, true) }},
		{"berth-ttl=0", func(b *testing.B) decider { return newBerth(b, st, 0, true) }},
		{"berth-noreserve", func(b *testing.B) decider { return newBerth(b, st, promsource.DefaultSnapshotTTL, false) }},
		{"naive", func(b *testing.B) decider { return &naive{q: st.embedded, names: st.names} }},
	}
	for _, mode := range []struct {
		name    string
		workers int
	}{{"sequential", 1}, {fmt.Sprintf("concurrent=%d", workers), workers}} {
		for _, s := range strategies {
			key := s.name + "/" + mode.name
			b.Run(key, func(b *testing.B) {
				r := measure(b, s.new(b), mode.workers, perOp(s.name, st.servers))
				results[key] = r
				if s.name != "naive" {
					return
				}
				if ref, ok := results["berth/"+mode.name]; ok {
					b.ReportMetric(float64(r.p50)/float64(ref.p50), "p50-naive/berth")
					b.ReportMetric(float64(r.p99)/float64(ref.p99), "p99-naive/berth")
					b.ReportMetric(r.perDecision/ref.perDecision, "queries-naive/berth")
					b.ReportMetric(ref.rate()/r.rate(), "throughput-berth/naive")
				}
				// Like for like: the naive strategy reserves nothing.
				if ref, ok := results["berth-noreserve/"+mode.name]; ok {
					b.ReportMetric(float64(r.p99)/float64(ref.p99), "p99-naive/noreserve")
					b.ReportMetric(ref.rate()/r.rate(), "throughput-noreserve/naive")
				}
			})
		}
		// Printed rather than logged: a parent benchmark's log is not
		// shown, and a sub-benchmark's is cut at 10 lines. The parent runs
		// once, after every sub-benchmark's final run.
		fmt.Print(table(st.servers, mode.name, results))
	}
}

// table renders one fleet size and mode as Markdown, with the ratios of the
// naive strategy against Berth's decision (snapshot cached, reserving).
func table(servers int, mode string, results map[string]result) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%d servers, %s, GOMAXPROCS=%d\n", servers, mode, runtime.GOMAXPROCS(0))
	sb.WriteString("| strategy | decisions | p50 ms | p99 ms | decisions/s | queries/decision |\n")
	sb.WriteString("|---|---|---|---|---|---|\n")
	rows := 0
	for _, name := range []string{"berth", "berth-ttl=0", "berth-noreserve", "naive"} {
		if r, ok := results[name+"/"+mode]; ok {
			fmt.Fprintf(&sb, "| %s | %d | %.2f | %.2f | %.0f | %.4g |\n", name, r.decisions, ms(r.p50), ms(r.p99), r.rate(), r.perDecision)
			rows++
		}
	}
	if rows == 0 {
		return ""
	}
	ref, okRef := results["berth/"+mode]
	nv, okNaive := results["naive/"+mode]
	if okRef && okNaive {
		fmt.Fprintf(&sb, "naive ÷ berth: p50 ×%.1f, p99 ×%.1f, queries ×%.0f; berth ÷ naive throughput ×%.1f\n",
			float64(nv.p50)/float64(ref.p50), float64(nv.p99)/float64(ref.p99), nv.perDecision/ref.perDecision, ref.rate()/nv.rate())
	}
	if nr, ok := results["berth-noreserve/"+mode]; ok && okNaive {
		fmt.Fprintf(&sb, "naive ÷ berth-noreserve: p50 ×%.1f, p99 ×%.1f; berth-noreserve ÷ naive throughput ×%.1f\n",
			float64(nv.p50)/float64(nr.p50), float64(nv.p99)/float64(nr.p99), nr.rate()/nv.rate())
	}
	return sb.String()
}

package promsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/berth-dev/berth/placement"
)

// The queries behind one snapshot. rulesQuery (built below) selects every
// server and organization recording rule placement reads, by exact name, in
// a single round trip; the second query is the only one that needs a
// function: a server that stopped answering still has a last-seen time for
// an hour, so its age keeps growing instead of the server vanishing.
const (
	lastSeenRule  = "server:berth_last_seen_timestamp_seconds:max"
	lastSeenQuery = `last_over_time(` + lastSeenRule + `[1h])`
	infoRule      = "server:berth_server_info:last"
	// answeringRule exists only while the server answers its scrapes (its
	// rule has no input once berth_server_info is stale), so its absence
	// next to a recent last-seen time marks a server that just went silent.
	answeringRule = "server:berth_sample_age_seconds:max"
)

// QueriesPerSnapshot is how many PromQL round trips one snapshot costs,
// whatever the fleet size. The first snapshot after a server went silent
// costs one more (lastKnownQueries: one per 50 newly silent servers).
const QueriesPerSnapshot = 2

// serverSignals maps each server recording rule placement reads to the
// field it fills. A rule absent for a server is listed in its Missing.
var serverSignals = map[string]func(*placement.ServerState, float64){
	"server:disk_usage_threshold:ratio":         func(s *placement.ServerState, v float64) { s.Disk.ThresholdRatio = v },
	"server:node_cpus:count":                    func(s *placement.ServerState, v float64) { s.CPU.Cores = v },
	"server:node_cpu_utilisation:rate5m":        func(s *placement.ServerState, v float64) { s.CPU.Utilisation = v },
	"server:node_cpu_utilisation:max15m":        func(s *placement.ServerState, v float64) { s.CPU.PeakUtilisation = v },
	"server:node_load1:per_cpu":                 func(s *placement.ServerState, v float64) { s.CPU.Load1PerCPU = v },
	"server:node_load5:per_cpu":                 func(s *placement.ServerState, v float64) { s.CPU.Load5PerCPU = v },
	"server:node_load15:per_cpu":                func(s *placement.ServerState, v float64) { s.CPU.Load15PerCPU = v },
	"server:node_memory_total:bytes":            func(s *placement.ServerState, v float64) { s.Memory.TotalBytes = v },
	"server:node_memory_available:bytes":        func(s *placement.ServerState, v float64) { s.Memory.AvailableBytes = v },
	"server:node_memory_used_bytes:max15m":      func(s *placement.ServerState, v float64) { s.Memory.PeakUsedBytes = v },
	"server:node_filesystem_size:bytes_root":    func(s *placement.ServerState, v float64) { s.Disk.SizeBytes = v },
	"server:node_filesystem_avail:bytes_root":   func(s *placement.ServerState, v float64) { s.Disk.AvailableBytes = v },
	"server:node_network_receive_bytes:rate5m":  func(s *placement.ServerState, v float64) { s.Network.ReceiveBytesPerSecond = v },
	"server:node_network_transmit_bytes:rate5m": func(s *placement.ServerState, v float64) { s.Network.TransmitBytesPerSecond = v },
	"server:node_network_receive_bytes:total":   func(s *placement.ServerState, v float64) { s.Network.ReceiveBytesTotal = v },
	"server:node_network_transmit_bytes:total":  func(s *placement.ServerState, v float64) { s.Network.TransmitBytesTotal = v },
	"server:node_netstat_Tcp_CurrEstab:sum":     func(s *placement.ServerState, v float64) { s.Network.EstablishedConnections = v },
	"server:container_running:count":            func(s *placement.ServerState, v float64) { s.Containers.Running = int(v) },
	"server:container_spec_cpu_cores:sum":       func(s *placement.ServerState, v float64) { s.Containers.LimitedCPUCores = v },
	"server:container_spec_memory_limit_bytes:sum": func(s *placement.ServerState, v float64) {
		s.Containers.LimitedMemoryBytes = v
	},
	"server:container_cpu_unlimited:count":      func(s *placement.ServerState, v float64) { s.Containers.UnlimitedCPU = int(v) },
	"server:container_memory_unlimited:count":   func(s *placement.ServerState, v float64) { s.Containers.UnlimitedMemory = int(v) },
	"server:container_cpu_usage_cores:rate5m":   func(s *placement.ServerState, v float64) { s.Containers.UsedCPUCores = v },
	"server:container_memory_working_set:bytes": func(s *placement.ServerState, v float64) { s.Containers.WorkingSetBytes = v },
	"server:berth_builds_active:sum":            func(s *placement.ServerState, v float64) { s.Containers.BuildsActive = int(v) },
	"server:managed_container_spec_cpu_cores:sum": func(s *placement.ServerState, v float64) {
		s.Containers.Managed.LimitedCPUCores = v
	},
	"server:managed_container_spec_memory_limit_bytes:sum": func(s *placement.ServerState, v float64) {
		s.Containers.Managed.LimitedMemoryBytes = v
	},
	"server:managed_container_cpu_unlimited:count": func(s *placement.ServerState, v float64) {
		s.Containers.Managed.UnlimitedCPU = int(v)
	},
	"server:managed_container_memory_unlimited:count": func(s *placement.ServerState, v float64) {
		s.Containers.Managed.UnlimitedMemory = int(v)
	},
}

// containerSignals are the rules behind ServerState.Containers: their
// provenance is the server's ContainerUsage.
var containerSignals = []string{
	"server:container_running:count",
	"server:container_spec_cpu_cores:sum",
	"server:container_spec_memory_limit_bytes:sum",
	"server:container_cpu_unlimited:count",
	"server:container_memory_unlimited:count",
	"server:container_cpu_usage_cores:rate5m",
	"server:container_memory_working_set:bytes",
	"server:berth_builds_active:sum",
	"server:managed_container_spec_cpu_cores:sum",
	"server:managed_container_spec_memory_limit_bytes:sum",
	"server:managed_container_cpu_unlimited:count",
	"server:managed_container_memory_unlimited:count",
}

// serverApplicationsRule lists the applications running on each server
// (label application_id): organizations' application counts and the
// release of confirmed reservations come from it.
const serverApplicationsRule = "server_application:container_running:count"

// rulesQuery is {__name__=~"name1|name2|…"} over every rule in the tables
// above; Prometheus turns an alternation of literals into a set lookup.
var rulesQuery = func() string {
	names := []string{infoRule, answeringRule, serverApplicationsRule}
	for name := range serverSignals {
		names = append(names, name)
	}
	slices.Sort(names)
	return `{__name__=~"` + strings.Join(names, "|") + `"}`
}()

// expectedSignals is every rule a fully reporting server has, sorted, so
// Missing lists come out in a stable order; signalBit numbers them for the
// per-server bitmask of signals seen.
var (
	expectedSignals = func() []string {
		names := []string{lastSeenRule}
		for name := range serverSignals {
			names = append(names, name)
		}
		slices.Sort(names)
		return names
	}()
	signalBit = func() map[string]uint64 {
		bits := make(map[string]uint64, len(expectedSignals))
		for i, name := range expectedSignals {
			bits[name] = 1 << i
		}
		return bits
	}()
)

// SnapshotterOptions tunes a Snapshotter.
type SnapshotterOptions struct {
	// TTL is how long one snapshot answers every request (0: each request
	// queries); up to 2×TTL while a refresh runs. Keep it short: placement
	// must not decide on old data.
	TTL time.Duration
	// Timeout bounds one fetch (all its queries).
	Timeout time.Duration
}

// Snapshotter implements placement.SnapshotSource over a Querier with
// QueriesPerSnapshot vector queries over the recording rules, cached for a
// short TTL and refreshed ahead; concurrent requests share one fetch. When
// the Querier fails the next Snapshot call fails: it never hands out a
// snapshot older than two TTLs, nor one from before a failed fetch.
type Snapshotter struct {
	querier Querier
	opts    SnapshotterOptions
	logger  *slog.Logger
	now     func() time.Time
	created time.Time

	mu       sync.Mutex
	cached   *placement.Snapshot
	inflight *fetch

	// lastKnown is what each silent server reported last, by server; only
	// the (single-flight) fetch reads and writes it.
	lastKnown map[string]lastKnown

	queries  atomic.Uint64
	fetches  atomic.Uint64
	lastGood atomic.Int64 // unix nanos of the newest successful snapshot

	duration        prometheus.Histogram
	up              prometheus.Gauge
	lastKnownErrors prometheus.Counter
}

type fetch struct {
	done chan struct{}
	snap *placement.Snapshot
	err  error
}

var _ placement.SnapshotSource = (*Snapshotter)(nil)

// NewSnapshotter registers berth_placement_query_duration_seconds,
// berth_placement_source_up and berth_placement_snapshot_age_seconds on reg.
func NewSnapshotter(q Querier, opts SnapshotterOptions, logger *slog.Logger, reg prometheus.Registerer) (*Snapshotter, error) {
	if opts.TTL < 0 {
		return nil, fmt.Errorf("snapshot ttl: must be >= 0, got %s", opts.TTL)
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("snapshot timeout: must be > 0, got %s", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultSnapshotTimeout
	}
	s := &Snapshotter{
		querier: q, opts: opts, logger: logger, now: time.Now, created: time.Now(),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "berth_placement_query_duration_seconds",
			Help:    "Duration of the PromQL queries placement sends to its Prometheus.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_placement_source_up",
			Help: "1 when the last snapshot query to Prometheus succeeded, 0 when it failed.",
		}),
		lastKnownErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_placement_last_known_query_errors_total",
			Help: "Failed queries for the last-known values of servers that stopped publishing; their usage then counts as unknown.",
		}),
	}
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "berth_placement_snapshot_age_seconds",
		Help: "Seconds since the newest successful fleet snapshot (since start when there was none).",
	}, func() float64 {
		since := s.created
		if ns := s.lastGood.Load(); ns != 0 {
			since = time.Unix(0, ns)
		}
		return s.now().Sub(since).Seconds()
	})
	for _, c := range []prometheus.Collector{s.duration, s.up, s.lastKnownErrors, age} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering snapshot metrics: %w", err)
		}
	}
	return s, nil
}

// Queries is the number of PromQL round trips made so far (for benchmarks:
// queries per decision).
func (s *Snapshotter) Queries() uint64 { return s.queries.Load() }

// Fetches is the number of snapshots actually fetched (not from cache).
func (s *Snapshotter) Fetches() uint64 { return s.fetches.Load() }

// Snapshot implements placement.SnapshotSource. The returned snapshot is
// shared between callers: treat it as read-only.
//
// A snapshot younger than the TTL is served as is. Between one and two TTLs
// old it is still served while one background fetch replaces it, so requests
// never queue behind a refresh in steady state. Older than two TTLs, or
// after a failed fetch, callers wait for a fresh one (and get its error).
func (s *Snapshotter) Snapshot(ctx context.Context) (*placement.Snapshot, error) {
	s.mu.Lock()
	var age time.Duration
	if s.cached != nil {
		age = s.now().Sub(s.cached.Taken)
	}
	if s.cached != nil && age < s.opts.TTL {
		snap := s.cached
		s.mu.Unlock()
		return snap, nil
	}
	f := s.inflight
	if f == nil {
		f = &fetch{done: make(chan struct{})}
		s.inflight = f
		// The fetch outlives the caller that started it: others wait on
		// it too. Its own deadline bounds it.
		go s.run(context.WithoutCancel(ctx), f)
	}
	if s.cached != nil && age < 2*s.opts.TTL {
		snap := s.cached
		s.mu.Unlock()
		return snap, nil
	}
	s.mu.Unlock()
	select {
	case <-f.done:
		return f.snap, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for fleet snapshot: %w", ctx.Err())
	}
}

func (s *Snapshotter) run(ctx context.Context, f *fetch) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	f.snap, f.err = s.fetch(ctx)
	s.mu.Lock()
	s.inflight = nil
	if f.err == nil {
		s.cached = f.snap
	} else {
		s.cached = nil
	}
	s.mu.Unlock()
	close(f.done)
}

func (s *Snapshotter) query(ctx context.Context, q string, ts time.Time) (model.Vector, error) {
	start := time.Now()
	s.queries.Add(1)
	v, err := s.querier.Query(ctx, q, ts)
	s.duration.Observe(time.Since(start).Seconds())
	return v, err
}

// fetch runs the snapshot's queries concurrently and assembles the result.
func (s *Snapshotter) fetch(ctx context.Context) (*placement.Snapshot, error) {
	s.fetches.Add(1)
	taken := s.now()
	var (
		wg                sync.WaitGroup
		rulesVec, seenVec model.Vector
		rulesErr, seenErr error
	)
	wg.Add(2)
	go func() { defer wg.Done(); rulesVec, rulesErr = s.query(ctx, rulesQuery, taken) }()
	go func() { defer wg.Done(); seenVec, seenErr = s.query(ctx, lastSeenQuery, taken) }()
	wg.Wait()
	// The rules query is long; errors name it rather than quote it.
	if rulesErr != nil {
		rulesErr = fmt.Errorf("recording rules query: %w", rulesErr)
	}
	if seenErr != nil {
		seenErr = fmt.Errorf("last-seen query: %w", seenErr)
	}
	if err := errors.Join(rulesErr, seenErr); err != nil {
		s.up.Set(0)
		s.logger.Error("fleet snapshot failed", "err", err)
		return nil, fmt.Errorf("fleet snapshot: %w", err)
	}
	s.up.Set(1)
	snap := assemble(taken, rulesVec, seenVec)
	fillLastKnown(snap, s.lastKnownSamples(ctx, snap))
	finish(snap)
	s.lastGood.Store(taken.UnixNano())
	return snap, nil
}

// lastKnownSamples returns what the snapshot's silent servers reported
// last: kept from earlier snapshots while a server's last-seen time is the
// same, read (lastKnownQueries) for the others. A failed read leaves those
// servers' usage unknown (quotas then refuse rather than count it as
// zero); it is counted, logged, and tried again on the next snapshot.
func (s *Snapshotter) lastKnownSamples(ctx context.Context, snap *placement.Snapshot) []*model.Sample {
	silent := silentServers(snap)
	kept := make(map[string]lastKnown, len(silent))
	missing := map[string]time.Time{}
	for _, name := range silent {
		at := snap.Servers[name].LastSeen
		if k, ok := s.lastKnown[name]; ok && k.at.Equal(at) {
			kept[name] = k
		} else {
			missing[name] = at
		}
	}
	for _, q := range lastKnownQueries(missing) {
		vec, err := s.query(ctx, q.expr, snap.Taken)
		if err != nil {
			// Not remembered: asked again on the next snapshot.
			s.lastKnownErrors.Inc()
			s.logger.Warn("reading the last-known values of servers that went silent failed; their usage counts as unknown",
				"servers", len(q.servers), "err", err)
			continue
		}
		for _, sample := range vec {
			name := string(sample.Metric["server"])
			if at, ok := missing[name]; ok {
				k := kept[name]
				k.at, k.samples = at, append(k.samples, sample)
				kept[name] = k
			}
		}
		for _, name := range q.servers {
			// A server with nothing at its last-seen time is remembered
			// too: asking again would give nothing again.
			if _, ok := kept[name]; !ok {
				kept[name] = lastKnown{at: missing[name]}
			}
		}
	}
	s.lastKnown = kept // fetches are single-flight: no other writer
	var out []*model.Sample
	for _, name := range silent {
		out = append(out, kept[name].samples...)
	}
	return out
}

// addApplication records one server_application sample on st.
func addApplication(st *placement.ServerState, m model.Metric, v float64) {
	app := string(m["application_id"])
	if app == "" || !(v > 0) {
		return
	}
	if st.Applications == nil {
		st.Applications = map[string]int{}
	}
	st.Applications[app] += int(v)
}

// assemble builds a Snapshot from the two query results.
func assemble(taken time.Time, rulesVec, seenVec model.Vector) *placement.Snapshot {
	snap := &placement.Snapshot{Taken: taken, Servers: map[string]*placement.ServerState{}}
	seen := map[*placement.ServerState]uint64{} // bitmask of signalBit
	answering := map[string]bool{}
	server := func(m model.Metric) *placement.ServerState {
		name := string(m["server"])
		st, ok := snap.Servers[name]
		if !ok {
			st = &placement.ServerState{Name: name, Role: string(m["role"]), Organization: string(m["organization"])}
			snap.Servers[name] = st
		}
		return st
	}
	for _, sample := range rulesVec {
		name := string(sample.Metric[model.MetricNameLabel])
		v := float64(sample.Value)
		if math.IsNaN(v) {
			continue
		}
		if name == answeringRule {
			answering[string(sample.Metric["server"])] = true
			continue
		}
		if set, ok := serverSignals[name]; ok || name == infoRule || name == serverApplicationsRule {
			if sample.Metric["server"] == "" {
				continue
			}
			st := server(sample.Metric)
			if name == serverApplicationsRule {
				// Not a signal fit needs: no application running is no series.
				addApplication(st, sample.Metric, v)
				continue
			}
			if name == infoRule {
				// Identity comes from the info rule when several
				// series disagree (e.g. a role changed recently).
				st.Role, st.Organization = string(sample.Metric["role"]), string(sample.Metric["organization"])
				continue
			}
			set(st, v)
			seen[st] |= signalBit[name]
			continue
		}
	}
	for _, sample := range seenVec {
		if sample.Metric["server"] == "" || math.IsNaN(float64(sample.Value)) {
			continue
		}
		st := server(sample.Metric)
		last := time.Unix(0, int64(float64(sample.Value)*1e9))
		if last.After(st.LastSeen) {
			st.LastSeen = last
		}
		seen[st] |= signalBit[lastSeenRule]
	}
	all := uint64(1)<<len(expectedSignals) - 1
	for _, st := range snap.Servers {
		if !st.LastSeen.IsZero() {
			st.Age = max(0, taken.Sub(st.LastSeen))
			st.Silent = !answering[st.Name]
		}
		if seen[st] == all {
			continue
		}
		for i, rule := range expectedSignals {
			if seen[st]&(1<<i) == 0 {
				st.Missing = append(st.Missing, rule)
				st.CapacityMissing = st.CapacityMissing || slices.Contains(capacitySignals, rule)
			}
		}
	}
	return snap
}

// capacitySignals are the rules fit cannot decide without (fit reads
// ServerState.CapacityMissing). Container sums are not among them: with
// no container running they read 0.
var capacitySignals = []string{
	"server:node_cpus:count",
	"server:node_cpu_utilisation:max15m",
	"server:node_memory_total:bytes",
	"server:node_memory_used_bytes:max15m",
	"server:node_filesystem_size:bytes_root",
	"server:node_filesystem_avail:bytes_root",
}

// Package containers is berth-exporter's per-container collector: metadata
// (names, images, allow-listed labels, state, restarts, exit codes) from the
// Docker Engine API, cached and kept current by its events stream; resource
// figures read at scrape time straight from each container's cgroup (v1 or
// v2) and /proc/<pid>/net/dev. Metric names, units and base labels are
// cAdvisor's; the label set is fixed and the same on every series.
package containers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Config configures the container collector.
type Config struct {
	// DockerHost is the Docker Engine API address: unix:///path or tcp://host:port.
	DockerHost string
	// LabelMap is the Docker label allow-list, "docker.label=prom_label,…".
	LabelMap string
	// BuildImagePattern is a regular expression (anchored) for build helper
	// images. Empty: DefaultBuildImagePattern.
	BuildImagePattern string
	// ProcFS and CgroupFS are where the host's /proc and /sys/fs/cgroup are
	// mounted. Empty: /proc and /sys/fs/cgroup.
	ProcFS   string
	CgroupFS string
	// RelistInterval is how often the full container list is fetched even
	// without events. Metadata older than three intervals is never served.
	// Zero: 30s.
	RelistInterval time.Duration
	// APIWait bounds how long a scrape waits for metadata that has not been
	// loaded yet (startup, reconnect). Default 1s.
	APIWait time.Duration
	// RequestTimeout bounds each Docker API call of the background cache.
	// Default 5s.
	RequestTimeout time.Duration
	// KernelLog is the kernel log device followed for OOM kills
	// (/dev/kmsg); empty: not followed (see oomLedger).
	KernelLog string
}

// Collector reports per-container metrics.
type Collector struct {
	cache    *metadataCache
	ooms     *oomLedger
	kmsg     *kernelLog // nil when not followed
	stop     context.CancelFunc
	done     chan struct{}
	procfs   string
	cgroupfs string
	labels   labelMap
	roles    roleRules
	apiWait  time.Duration
	descs    descs
	layout   labelLayout
	logger   *slog.Logger

	// readMu serializes the cgroup reading part of scrapes (two
	// Prometheus servers may scrape at once): states and readers, and the
	// file descriptors they hold, belong to whoever holds it.
	readMu  sync.Mutex
	states  map[string]*containerState // by container id
	readers []*fileReader

	warnedNamespace atomic.Bool
}

// containerState is what the collector keeps of a container from one
// scrape to the next, so that a scrape does only what changed since the
// last: where its cgroup is (it does not move while the container's main
// process lives), that cgroup's files held open, its limits, and the label
// pairs of its series.
type containerState struct {
	pid     int
	loc     cgroupLocation
	files   *cgroupFiles // nil until located, and after a failed read
	spec    cgroupSpec
	specGen uint64
	specAt  time.Time

	// labels are built for one metadata generation and cgroup path.
	labels     *containerLabels
	labelsGen  uint64
	labelsPath string
	labelsOK   bool
}

// release closes the container's files.
func (s *containerState) release() {
	if s.files != nil {
		s.files.close()
		s.files = nil
	}
	s.pid = 0
}

// specMaxAge bounds how long limits are reused without an event saying
// they changed, in case an engine changes them silently.
const specMaxAge = time.Minute

// New validates cfg and starts the background metadata cache. Close stops
// it. Errors name the berth-exporter flag that sets the field.
func New(cfg Config, logger *slog.Logger) (*Collector, error) {
	if cfg.DockerHost == "" {
		return nil, fmt.Errorf("--collector.containers.docker-host: docker host is empty")
	}
	client, err := newDockerClient(cfg.DockerHost)
	if err != nil {
		return nil, fmt.Errorf("--collector.containers.docker-host: %w", err)
	}
	labels, err := parseLabelMap(cfg.LabelMap)
	if err != nil {
		return nil, fmt.Errorf("--collector.containers.label-map: %w", err)
	}
	pattern := cfg.BuildImagePattern
	if pattern == "" {
		pattern = DefaultBuildImagePattern
	}
	roles, err := newRoleRules(pattern)
	if err != nil {
		return nil, fmt.Errorf("--collector.containers.build-image-pattern: %w", err)
	}
	if cfg.ProcFS == "" {
		cfg.ProcFS = "/proc"
	}
	if cfg.CgroupFS == "" {
		cfg.CgroupFS = "/sys/fs/cgroup"
	}
	if cfg.RelistInterval < 0 {
		return nil, fmt.Errorf("--collector.containers.relist-interval: must be positive, got %s", cfg.RelistInterval)
	}
	if cfg.RelistInterval == 0 {
		cfg.RelistInterval = 30 * time.Second
	}
	if cfg.APIWait <= 0 {
		cfg.APIWait = time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}

	names := append(append(append([]string(nil), baseLabels...), labels.names()...), "role")
	ctx, cancel := context.WithCancel(context.Background())
	ooms := newOOMLedger(time.Now())
	c := &Collector{
		cache:    newMetadataCache(client, ooms, cfg.RelistInterval, cfg.RequestTimeout, logger),
		ooms:     ooms,
		stop:     cancel,
		done:     make(chan struct{}),
		procfs:   cfg.ProcFS,
		cgroupfs: cfg.CgroupFS,
		labels:   labels,
		roles:    roles,
		apiWait:  cfg.APIWait,
		descs:    newDescs(names),
		layout:   newLabelLayout(names),
		logger:   logger,
		states:   map[string]*containerState{},
	}
	var running sync.WaitGroup
	running.Add(1)
	go func() {
		defer running.Done()
		c.cache.run(ctx)
	}()
	if cfg.KernelLog != "" {
		c.kmsg = &kernelLog{path: cfg.KernelLog, logger: logger,
			kill: func(id string) { ooms.kernelLogKill(id, time.Now()) }}
		running.Add(1)
		go func() {
			defer running.Done()
			c.kmsg.run(ctx)
		}()
	}
	go func() {
		running.Wait()
		close(c.done)
	}()
	return c, nil
}

// Close stops the background metadata cache and kernel log reader, waits
// for them and closes the cgroup files held open.
func (c *Collector) Close() {
	c.stop()
	<-c.done
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for id, st := range c.states {
		st.release()
		delete(c.states, id)
	}
}

// vanishedWait bounds how long a scrape waits for the metadata cache to
// apply events it already received, or for the engine to confirm what
// happened to containers whose processes disappeared since the last update
// or that stopped a moment ago (stopped or removed since).
const vanishedWait = time.Second

// reading is one container's metadata and, when it runs, its resources.
type reading struct {
	Container
	labels *containerLabels
	stats  cgroupStats
	spec   cgroupSpec
	// ifaces are the container's network interfaces; nil on host network.
	ifaces []interfaceStats
	live   bool
	// oomKills is the container's count across its runs (oomLedger).
	oomKills uint64
}

// Update implements exporter.Collector. It fails (and reports nothing) when
// the Docker metadata is not current: numbers without the right names and
// labels would be misattributed.
func (c *Collector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	if c.cache.pending() {
		// Events arrived that the cache has not applied yet (a container
		// was just removed, say): let it catch up, briefly.
		c.cache.refresh(ctx, vanishedWait)
	}
	containers, err := c.cache.snapshot(ctx, c.apiWait)
	if err != nil {
		return fmt.Errorf("reading docker metadata: %w", err)
	}
	readings, vanished := c.read(containers)
	if unsettled := vanished + countRecentlyStopped(readings, time.Now()); unsettled > 0 {
		// Running containers without processes stopped or were removed
		// since the cache last heard from the engine; containers that
		// stopped a moment ago are often being removed right now (docker
		// rm -f, compose down, a redeploy replacing them), and the removal
		// event can lag (Podman's file events logger is polled). Ask the
		// engine now, briefly, and report what it says rather than a
		// "running" container without resources, or one that no longer
		// exists.
		if c.cache.refresh(ctx, vanishedWait) {
			if containers, err = c.cache.snapshot(ctx, c.apiWait); err != nil {
				return fmt.Errorf("reading docker metadata: %w", err)
			}
			readings, _ = c.read(containers)
		} else {
			c.logger.Debug("engine did not confirm changed containers in time, leaving them out of this scrape", "containers", unsettled, "wait", vanishedWait)
			readings = dropUnsettled(readings, time.Now())
		}
		// A container the engine, asked after its process was gone, still
		// calls running (it is catching up, or no cgroup can be read at
		// all) keeps its metadata series: the engine's word stands.
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	builds := 0
	for _, r := range readings {
		if r.labels.role == RoleBuild && r.State == "running" {
			builds++
		}
		r.oomKills = c.ooms.total(r.ID)
		c.emit(ch, r)
	}
	ch <- prometheus.MustNewConstMetric(c.descs.buildsActive, prometheus.GaugeValue, float64(builds))
	if c.kmsg != nil {
		up := 0.0
		if c.kmsg.up.Load() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.descs.kernelLogUp, prometheus.GaugeValue, up)
	}
	return nil
}

// settleWindow is how long after a container stopped a scrape still asks
// the engine whether it exists before reporting it.
const settleWindow = 10 * time.Second

// recentlyStopped reports whether a container stopped less than
// settleWindow before now.
func (r reading) recentlyStopped(now time.Time) bool {
	return !r.Running() && !r.FinishedAt.IsZero() && now.Sub(r.FinishedAt) < settleWindow
}

func countRecentlyStopped(readings []reading, now time.Time) int {
	n := 0
	for _, r := range readings {
		if r.recentlyStopped(now) {
			n++
		}
	}
	return n
}

// dropUnsettled removes the readings of running containers whose cgroup
// could not be read and of containers that stopped a moment ago: without
// the engine's confirmation they may be removed already, and no series of
// a removed container may outlive its removal by a scrape.
func dropUnsettled(readings []reading, now time.Time) []reading {
	kept := readings[:0]
	for _, r := range readings {
		if (r.Running() && !r.live) || r.recentlyStopped(now) {
			continue
		}
		kept = append(kept, r)
	}
	return kept
}

// read reads the cgroups of the running containers, spread over a few
// goroutines (the reads are system calls; more workers than CPUs only
// contend). vanished counts running containers whose cgroup could not be
// read: typically they stopped since the cache last heard from the engine
// (a cgroup namespace mistake, which hides every cgroup, does not count).
func (c *Collector) read(containers []Container) (readings []reading, vanished int) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	readings = make([]reading, len(containers))
	states := make([]*containerState, len(containers))
	seen := make(map[string]bool, len(containers))
	for i, ct := range containers {
		seen[ct.ID] = true
		st := c.states[ct.ID]
		if st == nil {
			st = &containerState{}
			c.states[ct.ID] = st
		}
		states[i] = st
		readings[i] = reading{Container: ct}
	}
	for id, st := range c.states {
		if !seen[id] {
			st.release()
			delete(c.states, id)
		}
	}

	workers := min(runtime.GOMAXPROCS(0), 4, len(readings))
	for len(c.readers) < workers {
		c.readers = append(c.readers, newFileReader())
	}
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		lost atomic.Int64
	)
	for w := range workers {
		wg.Add(1)
		go func(r *fileReader) {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(readings) {
					return
				}
				rd, st := &readings[i], states[i]
				if !rd.Running() {
					st.release() // stopped: nothing to hold open
					continue
				}
				err := c.readContainer(r, st, rd)
				if err != nil {
					if errors.Is(err, errForeignCgroupNamespace) {
						// A deployment mistake, not a container stopping: say
						// so once, and do not ask the engine on every scrape.
						if c.warnedNamespace.CompareAndSwap(false, true) {
							c.logger.Warn("cannot read container cgroups", "err", err)
						}
					} else {
						lost.Add(1)
					}
					c.logger.Debug("reading container cgroup", "container", rd.Name, "id", shortID(rd.ID), "err", err)
					continue
				}
				rd.live = true
				if rd.HostNetwork {
					continue // host interfaces: node_network_* already counts them
				}
				if rd.ifaces, err = readNetDev(r, netDevPath(c.procfs, rd.Pid)); err != nil {
					c.logger.Debug("reading container network", "container", rd.Name, "id", shortID(rd.ID), "err", err)
				}
			}
		}(c.readers[w])
	}
	wg.Wait()

	for i := range readings {
		readings[i].labels = c.labelsFor(states[i], &readings[i])
	}
	return readings, int(lost.Load())
}

// labelsFor returns the label pairs of a container's series, rebuilding
// them only when its metadata or cgroup changed (or it shows a network
// interface not seen before).
func (c *Collector) labelsFor(st *containerState, rd *reading) *containerLabels {
	path := ""
	if rd.live {
		path = st.loc.Path
	}
	if !st.labelsOK || st.labelsGen != rd.Generation || st.labelsPath != path {
		values := make([]string, 0, len(c.layout.names))
		values = append(values, path, rd.Name, rd.Image)
		values = append(values, c.labels.values(rd.Labels)...)
		role := c.roles.role(rd.Name, rd.Image, rd.Labels)
		values = append(values, role)
		st.labels = newContainerLabels(c.layout, values, rd.State, role)
		st.labelsGen, st.labelsPath, st.labelsOK = rd.Generation, path, true
	}
	for i := range rd.ifaces {
		st.labels = st.labels.withInterface(rd.ifaces[i].Name)
	}
	return st.labels
}

// emit sends one container's series. Stopped containers (and running ones
// whose cgroup vanished) get only the metadata series and the OOM count.
func (c *Collector) emit(ch chan<- prometheus.Metric, r reading) {
	l := r.labels
	// One allocation for all of the container's series.
	samples := make([]sample, 0, 18+8*len(r.ifaces))
	send := func(d *prometheus.Desc, kind prometheus.ValueType, v float64, labels []*dto.LabelPair) {
		samples = append(samples, sample{desc: d, labels: labels, kind: kind, value: v})
		ch <- &samples[len(samples)-1]
	}
	gauge := func(d *prometheus.Desc, v float64) { send(d, prometheus.GaugeValue, v, l.base) }
	counter := func(d *prometheus.Desc, v float64) { send(d, prometheus.CounterValue, v, l.base) }

	send(c.descs.info, prometheus.GaugeValue, 1, l.info)
	gauge(c.descs.restarts, float64(r.RestartCount))
	gauge(c.descs.exitCode, float64(r.ExitCode))
	// For every container, running or not, and without the cgroup path:
	// the count outlives each run's cgroup, and a series whose labels
	// changed with each run would show increase() no rise at all.
	send(c.descs.oomEvents, prometheus.CounterValue, float64(r.oomKills), l.oom)
	if !r.live {
		return
	}

	st, spec := r.stats, r.spec
	send(c.descs.cpuUsage, prometheus.CounterValue, st.CPUUsageSeconds, l.cpu)
	counter(c.descs.cfsPeriods, float64(st.CFSPeriods))
	counter(c.descs.cfsThrottledPeriods, float64(st.CFSThrottledPeriods))
	counter(c.descs.cfsThrottledSec, st.CFSThrottledSeconds)
	gauge(c.descs.memUsage, float64(st.MemoryUsage))
	gauge(c.descs.memWorkingSet, float64(st.MemoryWorkingSet))
	gauge(c.descs.memRSS, float64(st.MemoryRSS))
	gauge(c.descs.memCache, float64(st.MemoryCache))
	gauge(c.descs.specMemLimit, float64(spec.MemoryLimit))
	if spec.CPUQuota > 0 {
		gauge(c.descs.specCPUQuota, float64(spec.CPUQuota))
	}
	if spec.CPUPeriod > 0 {
		gauge(c.descs.specCPUPeriod, float64(spec.CPUPeriod))
	}
	if spec.CPUShares > 0 {
		gauge(c.descs.specCPUShares, float64(spec.CPUShares))
	}
	if !r.StartedAt.IsZero() {
		gauge(c.descs.startTime, float64(r.StartedAt.UnixNano())/1e9)
	}
	for i := range r.ifaces {
		nic := &r.ifaces[i]
		labels := l.ifaces[nic.Name]
		send(c.descs.netRxBytes, prometheus.CounterValue, float64(nic.RxBytes), labels)
		send(c.descs.netRxPackets, prometheus.CounterValue, float64(nic.RxPackets), labels)
		send(c.descs.netRxErrors, prometheus.CounterValue, float64(nic.RxErrors), labels)
		send(c.descs.netRxDrop, prometheus.CounterValue, float64(nic.RxDrops), labels)
		send(c.descs.netTxBytes, prometheus.CounterValue, float64(nic.TxBytes), labels)
		send(c.descs.netTxPackets, prometheus.CounterValue, float64(nic.TxPackets), labels)
		send(c.descs.netTxErrors, prometheus.CounterValue, float64(nic.TxErrors), labels)
		send(c.descs.netTxDrop, prometheus.CounterValue, float64(nic.TxDrops), labels)
	}
}

// readContainer locates (once per container process) and reads a
// container's cgroup into rd. Only the worker handling the container
// touches st.
func (c *Collector) readContainer(r *fileReader, st *containerState, rd *reading) error {
	if st.files == nil || st.pid != rd.Pid {
		st.release()
		loc, err := locateCgroup(c.procfs, c.cgroupfs, rd.Pid)
		if err != nil {
			return err
		}
		st.pid, st.loc, st.files = rd.Pid, loc, newCgroupFiles(loc)
		st.specAt = time.Time{}
	}
	stats, err := readCgroup(r, st.files)
	if err == nil {
		c.ooms.kernel(rd.ID, rd.StartedAt, stats.OOMKills)
	}
	if err == nil && (st.specAt.IsZero() || st.specGen != rd.Generation || time.Since(st.specAt) > specMaxAge) {
		st.spec, err = readCgroupSpec(r, st.loc)
		st.specGen, st.specAt = rd.Generation, time.Now()
	}
	if err != nil {
		st.release()
		return fmt.Errorf("reading cgroup %s: %w", st.loc.Path, err)
	}
	rd.stats, rd.spec = stats, st.spec
	return nil
}

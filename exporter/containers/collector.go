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
	// BuildImagePattern is a regular expression (anchored) for build helper images.
	BuildImagePattern string
	// ProcFS and CgroupFS are where the host's /proc and /sys/fs/cgroup are mounted.
	ProcFS   string
	CgroupFS string
	// RelistInterval is how often the full container list is fetched even
	// without events. Metadata older than three intervals is never served.
	RelistInterval time.Duration
	// APIWait bounds how long a scrape waits for metadata that has not been
	// loaded yet (startup, reconnect). Default 1s.
	APIWait time.Duration
	// RequestTimeout bounds each Docker API call of the background cache.
	// Default 5s.
	RequestTimeout time.Duration
}

// Collector reports per-container metrics.
type Collector struct {
	cache    *metadataCache
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

	mu        sync.Mutex
	locations map[string]locatedCgroup // by container id

	warnedNamespace atomic.Bool
}

// locatedCgroup remembers where a container's cgroup is (it does not move
// while the container's main process lives) and its limits.
type locatedCgroup struct {
	pid     int
	loc     cgroupLocation
	spec    cgroupSpec
	specGen uint64
	specAt  time.Time
}

// specMaxAge bounds how long limits are reused without an event saying
// they changed, in case an engine changes them silently.
const specMaxAge = time.Minute

// New validates cfg and starts the background metadata cache. Close stops it.
func New(cfg Config, logger *slog.Logger) (*Collector, error) {
	if cfg.DockerHost == "" {
		return nil, fmt.Errorf("docker host is empty")
	}
	client, err := newDockerClient(cfg.DockerHost)
	if err != nil {
		return nil, err
	}
	labels, err := parseLabelMap(cfg.LabelMap)
	if err != nil {
		return nil, err
	}
	pattern := cfg.BuildImagePattern
	if pattern == "" {
		pattern = DefaultBuildImagePattern
	}
	roles, err := newRoleRules(pattern)
	if err != nil {
		return nil, err
	}
	if cfg.ProcFS == "" {
		cfg.ProcFS = "/proc"
	}
	if cfg.CgroupFS == "" {
		cfg.CgroupFS = "/sys/fs/cgroup"
	}
	if cfg.RelistInterval <= 0 {
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
	c := &Collector{
		cache:     newMetadataCache(client, cfg.RelistInterval, cfg.RequestTimeout, logger),
		stop:      cancel,
		done:      make(chan struct{}),
		procfs:    cfg.ProcFS,
		cgroupfs:  cfg.CgroupFS,
		labels:    labels,
		roles:     roles,
		apiWait:   cfg.APIWait,
		descs:     newDescs(names),
		layout:    newLabelLayout(names),
		logger:    logger,
		locations: map[string]locatedCgroup{},
	}
	go func() {
		defer close(c.done)
		c.cache.run(ctx)
	}()
	return c, nil
}

// Close stops the background metadata cache and waits for it.
func (c *Collector) Close() {
	c.stop()
	<-c.done
}

// vanishedWait bounds how long a scrape waits for the metadata cache to
// apply events it already received, or for the engine to confirm what
// happened to containers whose processes disappeared since the last update
// (stopped or removed a moment ago).
const vanishedWait = time.Second

// reading is one container's metadata and, when it runs, its resources.
type reading struct {
	Container
	role  string
	loc   cgroupLocation
	stats cgroupStats
	spec  cgroupSpec
	// ifaces are the container's network interfaces; nil on host network.
	ifaces []interfaceStats
	live   bool
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
	if vanished > 0 && !c.cache.refresh(ctx, vanishedWait) {
		c.logger.Debug("engine did not confirm vanished containers in time", "vanished", vanished, "wait", vanishedWait)
	} else if vanished > 0 {
		// Running containers without processes stopped or were removed
		// since the last event was handled: report what the engine says
		// now rather than a "running" container without resources.
		if containers, err = c.cache.snapshot(ctx, c.apiWait); err != nil {
			return fmt.Errorf("reading docker metadata: %w", err)
		}
		readings, _ = c.read(containers)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	builds := 0
	for _, r := range readings {
		if r.role == RoleBuild && r.State == "running" {
			builds++
		}
		c.emit(ch, r)
	}
	ch <- prometheus.MustNewConstMetric(c.descs.buildsActive, prometheus.GaugeValue, float64(builds))
	return nil
}

// read reads the cgroups of the running containers, spread over a few
// goroutines (the reads are system calls; more workers than CPUs only
// contend). vanished counts running containers whose cgroup could not be
// read: typically they stopped since the cache last heard from the engine.
func (c *Collector) read(containers []Container) (readings []reading, vanished int) {
	readings = make([]reading, len(containers))
	seen := make(map[string]bool, len(containers))
	for i, ct := range containers {
		seen[ct.ID] = true
		readings[i] = reading{Container: ct, role: c.roles.role(ct.Name, ct.Image, ct.Labels)}
	}
	workers := min(runtime.GOMAXPROCS(0), 4, len(readings))
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		lost atomic.Int64
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := newFileReader()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(readings) {
					return
				}
				rd := &readings[i]
				if !rd.Running() {
					continue
				}
				var err error
				rd.loc, rd.stats, rd.spec, err = c.readContainer(r, rd.Container)
				if err != nil {
					lost.Add(1)
					if errors.Is(err, errForeignCgroupNamespace) && c.warnedNamespace.CompareAndSwap(false, true) {
						// A deployment mistake, not a container stopping: say so once.
						c.logger.Warn("cannot read container cgroups", "err", err)
					}
					c.logger.Debug("reading container cgroup", "container", rd.Name, "id", shortID(rd.ID), "err", err)
					continue
				}
				rd.live = true
				if rd.HostNetwork {
					continue // host interfaces: node_network_* already counts them
				}
				if rd.ifaces, err = readNetDev(r, c.procfs, rd.Pid); err != nil {
					c.logger.Debug("reading container network", "container", rd.Name, "id", shortID(rd.ID), "err", err)
				}
			}
		}()
	}
	wg.Wait()
	c.forgetExcept(seen)
	return readings, int(lost.Load())
}

// Extra label names, addressable for shared label pairs.
var (
	labelState     = "state"
	labelCPU       = "cpu"
	labelInterface = "interface"
	cpuTotal       = "total"
)

// emit sends one container's series. Stopped containers (and running ones
// whose cgroup vanished) get only the metadata series.
func (c *Collector) emit(ch chan<- prometheus.Metric, r reading) {
	values := make([]string, 0, len(c.layout.names))
	values = append(values, r.loc.Path, r.Name, r.Image)
	values = append(values, c.labels.values(r.Labels)...)
	values = append(values, r.role)
	set := c.layout.set(values)

	send := func(d *prometheus.Desc, kind prometheus.ValueType, v float64, labels []*dto.LabelPair) {
		ch <- &sample{desc: d, labels: labels, kind: kind, value: v}
	}
	gauge := func(d *prometheus.Desc, v float64) { send(d, prometheus.GaugeValue, v, set.base) }
	counter := func(d *prometheus.Desc, v float64) { send(d, prometheus.CounterValue, v, set.base) }

	state := r.State
	send(c.descs.info, prometheus.GaugeValue, 1, set.with(&labelState, &state))
	gauge(c.descs.restarts, float64(r.RestartCount))
	gauge(c.descs.exitCode, float64(r.ExitCode))
	if !r.live {
		return
	}

	st, spec := r.stats, r.spec
	send(c.descs.cpuUsage, prometheus.CounterValue, st.CPUUsageSeconds, set.with(&labelCPU, &cpuTotal))
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
	counter(c.descs.oomEvents, float64(st.OOMKills))
	if !r.StartedAt.IsZero() {
		gauge(c.descs.startTime, float64(r.StartedAt.UnixNano())/1e9)
	}
	for i := range r.ifaces {
		nic := &r.ifaces[i]
		labels := set.with(&labelInterface, &nic.Name)
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
// container's cgroup.
func (c *Collector) readContainer(r *fileReader, ct Container) (cgroupLocation, cgroupStats, cgroupSpec, error) {
	c.mu.Lock()
	cached, ok := c.locations[ct.ID]
	c.mu.Unlock()
	if !ok || cached.pid != ct.Pid {
		loc, err := locateCgroup(c.procfs, c.cgroupfs, ct.Pid)
		if err != nil {
			return cgroupLocation{}, cgroupStats{}, cgroupSpec{}, err
		}
		cached = locatedCgroup{pid: ct.Pid, loc: loc}
	}
	stats, err := readCgroup(r, cached.loc)
	if err == nil && (cached.specAt.IsZero() || cached.specGen != ct.Generation || time.Since(cached.specAt) > specMaxAge) {
		cached.spec, err = readCgroupSpec(r, cached.loc)
		cached.specGen, cached.specAt = ct.Generation, time.Now()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		delete(c.locations, ct.ID)
		return cgroupLocation{}, cgroupStats{}, cgroupSpec{}, fmt.Errorf("reading cgroup %s: %w", cached.loc.Path, err)
	}
	c.locations[ct.ID] = cached
	return cached.loc, stats, cached.spec, nil
}

func (c *Collector) forgetExcept(seen map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.locations {
		if !seen[id] {
			delete(c.locations, id)
		}
	}
}

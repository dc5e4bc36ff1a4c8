package system

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"
	gopsutil "github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/cpu"
)

// jumpBackSeconds is how far a CPU's idle time must fall before we assume the
// CPU was hot-unplugged and replugged (its counters restarted) rather than
// that the kernel reported a small glitch. node_exporter uses the same value.
const jumpBackSeconds = 3.0

var (
	cpuSecondsDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "cpu", "seconds_total"),
		"Seconds the CPUs spent in each mode.",
		[]string{"cpu", "mode"}, nil,
	)
	cpuGuestSecondsDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "cpu", "guest_seconds_total"),
		"Seconds the CPUs spent in guests (VMs) for each mode.",
		[]string{"cpu", "mode"}, nil,
	)
)

// cpuTimes is one CPU's times in seconds, as gopsutil reads them from
// /proc/stat.
type cpuTimes struct {
	User, Nice, System, Idle, Iowait, IRQ, SoftIRQ, Steal, Guest, GuestNice float64
}

// cpuCollector exports node_cpu_seconds_total and node_cpu_guest_seconds_total
// from gopsutil's per-CPU times, keeping each counter monotonic, and from
// sysfs (through procfs) node_cpu_isolated and the thermal throttle
// counters, like node_exporter.
type cpuCollector struct {
	paths  Paths
	env    gopsutil.EnvMap
	sysfs  sysfs.FS
	logger *slog.Logger
	// isolated is read once: isolcpus is a boot parameter.
	isolated []uint16

	mu   sync.Mutex
	last map[int]cpuTimes
}

func newCPUCollector(paths Paths, logger *slog.Logger) (*cpuCollector, error) {
	fs, err := sysfs.NewFS(paths.Sys)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs at %s: %w", paths.Sys, err)
	}
	isolated, err := readIsolatedCPUs(fs)
	if err != nil {
		return nil, err
	}
	return &cpuCollector{paths: paths, env: paths.gopsutilEnv(), sysfs: fs, logger: logger, isolated: isolated, last: map[int]cpuTimes{}}, nil
}

// Update implements exporter.Collector.
func (c *cpuCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	// gopsutil returns an empty list, not an error, when /proc/stat cannot
	// be read, and skips lines it cannot parse: no CPU at all is the error.
	stats, err := cpu.TimesWithContext(withEnv(ctx, c.env), true)
	if err != nil {
		return fmt.Errorf("reading cpu times: %w", err)
	}
	fresh := make(map[int]cpuTimes, len(stats))
	for _, s := range stats {
		id, err := strconv.Atoi(strings.TrimPrefix(s.CPU, "cpu"))
		if err != nil {
			return fmt.Errorf("reading cpu times: unexpected cpu name %q", s.CPU)
		}
		fresh[id] = cpuTimes{
			User: s.User, Nice: s.Nice, System: s.System, Idle: s.Idle, Iowait: s.Iowait,
			IRQ: s.Irq, SoftIRQ: s.Softirq, Steal: s.Steal, Guest: s.Guest, GuestNice: s.GuestNice,
		}
	}
	if len(fresh) == 0 {
		return fmt.Errorf("reading cpu times: no readable per-cpu line in %s", c.paths.proc("stat"))
	}
	ids := make([]int, 0, len(fresh))
	for id := range fresh {
		ids = append(ids, id)
	}
	sort.Ints(ids)

	current := c.advance(fresh)
	for _, id := range ids {
		t := current[id]
		cpu := strconv.Itoa(id)
		for _, m := range []struct {
			mode  string
			value float64
		}{
			{"user", t.User}, {"nice", t.Nice}, {"system", t.System}, {"idle", t.Idle},
			{"iowait", t.Iowait}, {"irq", t.IRQ}, {"softirq", t.SoftIRQ}, {"steal", t.Steal},
		} {
			ch <- prometheus.MustNewConstMetric(cpuSecondsDesc, prometheus.CounterValue, m.value, cpu, m.mode)
		}
		// Guest time is also counted in user and nice; node_exporter exposes
		// it separately so that it can be subtracted.
		ch <- prometheus.MustNewConstMetric(cpuGuestSecondsDesc, prometheus.CounterValue, t.Guest, cpu, "user")
		ch <- prometheus.MustNewConstMetric(cpuGuestSecondsDesc, prometheus.CounterValue, t.GuestNice, cpu, "nice")
	}
	for _, id := range c.isolated {
		ch <- prometheus.MustNewConstMetric(cpuIsolatedDesc, prometheus.GaugeValue, 1, strconv.Itoa(int(id)))
	}

	throttles, err := readThrottles(c.sysfs)
	if err != nil {
		return err
	}
	for pkg, n := range throttles.Package {
		ch <- prometheus.MustNewConstMetric(cpuPackageThrottlesDesc, prometheus.CounterValue, float64(n), pkg)
	}
	for key, n := range throttles.Core {
		ch <- prometheus.MustNewConstMetric(cpuCoreThrottlesDesc, prometheus.CounterValue, float64(n), key[0], key[1])
	}
	return nil
}

// advance merges a fresh reading into the remembered one and returns the
// values to export. Concurrent scrapes are serialised so that neither can
// publish a value lower than one the other already published.
func (c *cpuCollector) advance(fresh map[int]cpuTimes) map[int]cpuTimes {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := make(map[int]cpuTimes, len(fresh))
	for id, now := range fresh {
		merged, reset, backwards := mergeCPUTimes(c.last[id], now)
		if reset {
			c.logger.Debug("CPU idle counter jumped backwards more than 3 seconds, assuming a hotplug event and resetting", "cpu", id)
		}
		for _, field := range backwards {
			c.logger.Debug("CPU counter jumped backwards, keeping the previous value", "cpu", id, "mode", field)
		}
		next[id] = merged
	}
	// CPUs that went offline are forgotten, so that they start from their
	// fresh values when they come back.
	c.last = next
	return next
}

// mergeCPUTimes implements node_exporter's CPU jump handling: a counter that
// goes backwards keeps its previous value (the kernel's per-CPU accounting
// can wobble by a tick), unless idle fell by at least jumpBackSeconds, which
// means the CPU was replugged and all its counters restarted from zero.
// It reports whether it reset and which fields it held back.
func mergeCPUTimes(prev, now cpuTimes) (merged cpuTimes, reset bool, backwards []string) {
	if prev.Idle-now.Idle >= jumpBackSeconds {
		prev = cpuTimes{}
		reset = true
	}
	pick := func(field string, old, cur float64) float64 {
		if cur >= old {
			return cur
		}
		backwards = append(backwards, field)
		return old
	}
	merged = cpuTimes{
		User:      pick("user", prev.User, now.User),
		Nice:      pick("nice", prev.Nice, now.Nice),
		System:    pick("system", prev.System, now.System),
		Idle:      pick("idle", prev.Idle, now.Idle),
		Iowait:    pick("iowait", prev.Iowait, now.Iowait),
		IRQ:       pick("irq", prev.IRQ, now.IRQ),
		SoftIRQ:   pick("softirq", prev.SoftIRQ, now.SoftIRQ),
		Steal:     pick("steal", prev.Steal, now.Steal),
		Guest:     pick("guest", prev.Guest, now.Guest),
		GuestNice: pick("guest_nice", prev.GuestNice, now.GuestNice),
	}
	return merged, reset, backwards
}

package system

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
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

// cpuCollector exports node_cpu_seconds_total and node_cpu_guest_seconds_total
// from /proc/stat, keeping each counter monotonic, and from sysfs
// node_cpu_isolated and the thermal throttle counters, like node_exporter.
type cpuCollector struct {
	paths  Paths
	logger *slog.Logger
	// isolated is read once: isolcpus is a boot parameter.
	isolated []int

	mu   sync.Mutex
	last map[int]cpuTimes
}

func newCPUCollector(paths Paths, logger *slog.Logger) (*cpuCollector, error) {
	isolated, err := readIsolatedCPUs(paths)
	if err != nil {
		return nil, err
	}
	return &cpuCollector{paths: paths, logger: logger, isolated: isolated, last: map[int]cpuTimes{}}, nil
}

// Update implements exporter.Collector.
func (c *cpuCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	var st procStat
	err := withFile(c.paths.proc("stat"), func(data []byte) (err error) {
		st, err = parseProcStat(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("reading cpu stats: %w", err)
	}
	if len(st.CPUs) == 0 {
		return fmt.Errorf("no per-cpu lines in %s", c.paths.proc("stat"))
	}
	ids := make([]int, 0, len(st.CPUs))
	for id := range st.CPUs {
		ids = append(ids, id)
	}
	sort.Ints(ids)

	current := c.advance(st.CPUs)
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
		ch <- prometheus.MustNewConstMetric(cpuIsolatedDesc, prometheus.GaugeValue, 1, strconv.Itoa(id))
	}

	throttles, err := readThrottles(c.paths)
	if err != nil {
		return err
	}
	for pkg, n := range throttles.Package {
		ch <- prometheus.MustNewConstMetric(cpuPackageThrottlesDesc, prometheus.CounterValue, float64(n), strconv.FormatUint(pkg, 10))
	}
	for key, n := range throttles.Core {
		ch <- prometheus.MustNewConstMetric(cpuCoreThrottlesDesc, prometheus.CounterValue, float64(n), strconv.FormatUint(key[0], 10), strconv.FormatUint(key[1], 10))
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

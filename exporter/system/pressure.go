package system

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/exporter"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	pressureCPUWaitingDesc = prometheus.NewDesc("node_pressure_cpu_waiting_seconds_total",
		"Total time in seconds that processes have waited for CPU time", nil, nil)
	pressureIOWaitingDesc = prometheus.NewDesc("node_pressure_io_waiting_seconds_total",
		"Total time in seconds that processes have waited due to IO congestion", nil, nil)
	pressureIOStalledDesc = prometheus.NewDesc("node_pressure_io_stalled_seconds_total",
		"Total time in seconds no process could make progress due to IO congestion", nil, nil)
	pressureMemoryWaitingDesc = prometheus.NewDesc("node_pressure_memory_waiting_seconds_total",
		"Total time in seconds that processes have waited for memory", nil, nil)
	pressureMemoryStalledDesc = prometheus.NewDesc("node_pressure_memory_stalled_seconds_total",
		"Total time in seconds no process could make progress due to memory congestion", nil, nil)
)

// psiTotals are the cumulative stall times of one /proc/pressure file, in
// microseconds as the kernel reports them.
type psiTotals struct {
	Some, Full       uint64
	HasSome, HasFull bool
}

// pressureCollector exports node_pressure_* from /proc/pressure (Linux ≥ 4.20
// with CONFIG_PSI). Without PSI it returns exporter.ErrNoData.
type pressureCollector struct {
	paths  Paths
	logger *slog.Logger
}

// Update implements exporter.Collector.
func (c *pressureCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	var res [3]psiTotals
	for i, resource := range []string{"cpu", "io", "memory"} {
		path := c.paths.proc("pressure", resource)
		err := withFile(path, func(data []byte) (err error) {
			res[i], err = parsePSI(string(data))
			if err != nil {
				return fmt.Errorf("parsing %s: %w", path, err)
			}
			return nil
		})
		if errors.Is(err, fs.ErrNotExist) {
			c.logger.Debug("pressure information is unavailable, it needs Linux >= 4.20 with CONFIG_PSI", "resource", resource)
			return exporter.ErrNoData
		}
		if err != nil {
			return fmt.Errorf("reading %s pressure: %w", resource, err)
		}
		if !res[i].HasSome {
			return fmt.Errorf("parsing %s: no \"some\" line", c.paths.proc("pressure", resource))
		}
	}
	cpu, io, mem := res[0], res[1], res[2]
	ch <- prometheus.MustNewConstMetric(pressureCPUWaitingDesc, prometheus.CounterValue, microsToSeconds(cpu.Some))
	ch <- prometheus.MustNewConstMetric(pressureIOWaitingDesc, prometheus.CounterValue, microsToSeconds(io.Some))
	ch <- prometheus.MustNewConstMetric(pressureIOStalledDesc, prometheus.CounterValue, microsToSeconds(io.Full))
	ch <- prometheus.MustNewConstMetric(pressureMemoryWaitingDesc, prometheus.CounterValue, microsToSeconds(mem.Some))
	ch <- prometheus.MustNewConstMetric(pressureMemoryStalledDesc, prometheus.CounterValue, microsToSeconds(mem.Full))
	return nil
}

// microsToSeconds divides in two steps like node_exporter, so both print
// the very same float.
func microsToSeconds(us uint64) float64 { return float64(us) / 1000.0 / 1000.0 }

// parsePSI parses "some avg10=0.00 avg60=0.00 avg300=0.00 total=123" and the
// matching "full" line, keeping the totals.
func parsePSI(data string) (psiTotals, error) {
	var t psiTotals
	for line := range strings.Lines(data) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		var total uint64
		found := false
		for _, f := range fields[1:] {
			if v, ok := strings.CutPrefix(f, "total="); ok {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return psiTotals{}, fmt.Errorf("parsing %s total %q: %w", fields[0], v, err)
				}
				total, found = n, true
			}
		}
		if !found {
			return psiTotals{}, fmt.Errorf("line %q has no total=", strings.TrimSpace(line))
		}
		switch fields[0] {
		case "some":
			t.Some, t.HasSome = total, true
		case "full":
			t.Full, t.HasFull = total, true
		}
	}
	return t, nil
}

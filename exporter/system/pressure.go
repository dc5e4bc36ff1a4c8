package system

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/berth-dev/berth/exporter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
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

// pressureCollector exports node_pressure_* from /proc/pressure (Linux ≥ 4.20
// with CONFIG_PSI), read with procfs as node_exporter does (gopsutil has no
// PSI reader). Without PSI it returns exporter.ErrNoData.
type pressureCollector struct {
	proc   procfs.FS
	logger *slog.Logger
}

func newPressureCollector(paths Paths, logger *slog.Logger) (*pressureCollector, error) {
	proc, err := procfs.NewFS(paths.Proc)
	if err != nil {
		return nil, fmt.Errorf("opening procfs at %s: %w", paths.Proc, err)
	}
	return &pressureCollector{proc: proc, logger: logger}, nil
}

// Update implements exporter.Collector.
func (c *pressureCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	var res [3]procfs.PSIStats
	for i, resource := range []string{"cpu", "io", "memory"} {
		st, err := c.proc.PSIStatsForResource(resource)
		if errors.Is(err, fs.ErrNotExist) {
			c.logger.Debug("pressure information is unavailable, it needs Linux >= 4.20 with CONFIG_PSI", "resource", resource)
			return exporter.ErrNoData
		}
		if err != nil {
			return fmt.Errorf("reading %s pressure: %w", resource, err)
		}
		if st.Some == nil {
			return fmt.Errorf("reading %s pressure: no \"some\" line", resource)
		}
		res[i] = st
	}
	cpu, io, mem := res[0], res[1], res[2]
	ch <- prometheus.MustNewConstMetric(pressureCPUWaitingDesc, prometheus.CounterValue, microsToSeconds(cpu.Some.Total))
	ch <- prometheus.MustNewConstMetric(pressureIOWaitingDesc, prometheus.CounterValue, microsToSeconds(io.Some.Total))
	ch <- prometheus.MustNewConstMetric(pressureIOStalledDesc, prometheus.CounterValue, microsToSeconds(fullTotal(io)))
	ch <- prometheus.MustNewConstMetric(pressureMemoryWaitingDesc, prometheus.CounterValue, microsToSeconds(mem.Some.Total))
	ch <- prometheus.MustNewConstMetric(pressureMemoryStalledDesc, prometheus.CounterValue, microsToSeconds(fullTotal(mem)))
	return nil
}

// fullTotal is the "full" total, 0 when the kernel has no full line (as
// node_exporter publishes it).
func fullTotal(st procfs.PSIStats) uint64 {
	if st.Full == nil {
		return 0
	}
	return st.Full.Total
}

// microsToSeconds divides in two steps like node_exporter, so both print
// the very same float.
func microsToSeconds(us uint64) float64 { return float64(us) / 1000.0 / 1000.0 }

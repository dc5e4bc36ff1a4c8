package system

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

var bootTimeDesc = prometheus.NewDesc(
	prometheus.BuildFQName(namespace, "", "boot_time_seconds"),
	"Node boot time, in unixtime.",
	nil, nil,
)

// bootTimeCollector exports node_boot_time_seconds from the btime line of
// /proc/stat, read with procfs as node_exporter's stat collector does.
// gopsutil's host.BootTime is not used: inside a container it switches to
// now − /proc/uptime (a value that moves by a second between scrapes), and
// it first runs a virtualization probe (a dozen files) whose result it
// caches process-wide.
type bootTimeCollector struct {
	proc procfs.FS
}

func newBootTimeCollector(paths Paths) (*bootTimeCollector, error) {
	fs, err := procfs.NewFS(paths.Proc)
	if err != nil {
		return nil, fmt.Errorf("opening procfs at %s: %w", paths.Proc, err)
	}
	return &bootTimeCollector{proc: fs}, nil
}

// Update implements exporter.Collector.
func (c *bootTimeCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	st, err := c.proc.Stat()
	if err != nil {
		return fmt.Errorf("reading boot time: %w", err)
	}
	if st.BootTime == 0 {
		return fmt.Errorf("reading boot time: no btime line in /proc/stat")
	}
	ch <- prometheus.MustNewConstMetric(bootTimeDesc, prometheus.GaugeValue, float64(st.BootTime))
	return nil
}

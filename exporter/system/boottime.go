package system

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

var bootTimeDesc = prometheus.NewDesc(
	prometheus.BuildFQName(namespace, "", "boot_time_seconds"),
	"Node boot time, in unixtime.",
	nil, nil,
)

// bootTimeCollector exports node_boot_time_seconds from the btime line of
// /proc/stat (on Linux node_exporter publishes it from its stat collector).
type bootTimeCollector struct {
	paths Paths
}

// Update implements exporter.Collector.
func (c *bootTimeCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	var st procStat
	err := withFile(c.paths.proc("stat"), func(data []byte) (err error) {
		st, err = parseProcStat(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("reading boot time: %w", err)
	}
	if !st.HasBootTime {
		return fmt.Errorf("no btime line in %s", c.paths.proc("stat"))
	}
	ch <- prometheus.MustNewConstMetric(bootTimeDesc, prometheus.GaugeValue, st.BootTime)
	return nil
}

package system

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	gopsutil "github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/load"
)

var loadDescs = [3]*prometheus.Desc{
	prometheus.NewDesc(namespace+"_load1", "1m load average.", nil, nil),
	prometheus.NewDesc(namespace+"_load5", "5m load average.", nil, nil),
	prometheus.NewDesc(namespace+"_load15", "15m load average.", nil, nil),
}

// loadavgCollector exports node_load1, node_load5 and node_load15 from
// gopsutil, which reads /proc/loadavg under --path.procfs and falls back to
// sysinfo(2) when it cannot (the load average is not namespaced, so that is
// the same host-wide value).
type loadavgCollector struct {
	env gopsutil.EnvMap
}

// Update implements exporter.Collector.
func (c *loadavgCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	avg, err := load.AvgWithContext(withEnv(ctx, c.env))
	if err != nil {
		return fmt.Errorf("reading load average: %w", err)
	}
	for i, v := range [3]float64{avg.Load1, avg.Load5, avg.Load15} {
		ch <- prometheus.MustNewConstMetric(loadDescs[i], prometheus.GaugeValue, v)
	}
	return nil
}

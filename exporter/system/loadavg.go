package system

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

var loadDescs = [3]*prometheus.Desc{
	prometheus.NewDesc(namespace+"_load1", "1m load average.", nil, nil),
	prometheus.NewDesc(namespace+"_load5", "5m load average.", nil, nil),
	prometheus.NewDesc(namespace+"_load15", "15m load average.", nil, nil),
}

// loadavgCollector exports node_load1, node_load5 and node_load15.
type loadavgCollector struct {
	paths Paths
}

// Update implements exporter.Collector.
func (c *loadavgCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	var loads [3]float64
	err := withFile(c.paths.proc("loadavg"), func(data []byte) (err error) {
		loads, err = parseLoadavg(string(data))
		return err
	})
	if err != nil {
		return fmt.Errorf("reading load average: %w", err)
	}
	for i, v := range loads {
		ch <- prometheus.MustNewConstMetric(loadDescs[i], prometheus.GaugeValue, v)
	}
	return nil
}

// parseLoadavg reads the first three fields of /proc/loadavg.
func parseLoadavg(data string) ([3]float64, error) {
	var loads [3]float64
	fields := strings.Fields(data)
	if len(fields) < 3 {
		return loads, fmt.Errorf("parsing loadavg %q: want at least 3 fields, got %d", strings.TrimSpace(data), len(fields))
	}
	for i := range loads {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			return loads, fmt.Errorf("parsing loadavg field %d %q: %w", i+1, fields[i], err)
		}
		loads[i] = v
	}
	return loads, nil
}

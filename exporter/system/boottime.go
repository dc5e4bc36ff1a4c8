package system

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

var bootTimeDesc = prometheus.NewDesc(
	prometheus.BuildFQName(namespace, "", "boot_time_seconds"),
	"Node boot time, in unixtime.",
	nil, nil,
)

// bootTimeCollector exports node_boot_time_seconds from the btime line of
// /proc/stat, the value node_exporter's stat collector publishes.
//
// It reads that one line itself, the only hand parser of this package:
// procfs's FS.Stat parses all of /proc/stat (the intr line alone holds
// hundreds of counters) to return it, about 45 µs and 25 KB a scrape, and
// gopsutil's host.BootTime switches to now − /proc/uptime inside containers
// (a value that moves by a second between scrapes) after a virtualization
// probe it caches process-wide.
type bootTimeCollector struct {
	statPath string
}

func newBootTimeCollector(paths Paths) (*bootTimeCollector, error) {
	return &bootTimeCollector{statPath: paths.proc("stat")}, nil
}

// Update implements exporter.Collector.
func (c *bootTimeCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	data, err := os.ReadFile(c.statPath)
	if err != nil {
		return fmt.Errorf("reading boot time: %w", err)
	}
	btime, err := parseBootTime(data)
	if err != nil {
		return fmt.Errorf("reading boot time from %s: %w", c.statPath, err)
	}
	ch <- prometheus.MustNewConstMetric(bootTimeDesc, prometheus.GaugeValue, float64(btime))
	return nil
}

// parseBootTime returns the value of the "btime <seconds>" line of a
// /proc/stat text.
func parseBootTime(stat []byte) (uint64, error) {
	for len(stat) > 0 {
		var line []byte
		line, stat, _ = bytes.Cut(stat, []byte("\n"))
		value, ok := bytes.CutPrefix(line, []byte("btime "))
		if !ok {
			continue
		}
		btime, err := strconv.ParseUint(string(bytes.TrimSpace(value)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid btime line %q: %w", line, err)
		}
		if btime == 0 {
			return 0, errors.New("btime is 0")
		}
		return btime, nil
	}
	return 0, errors.New("no btime line")
}

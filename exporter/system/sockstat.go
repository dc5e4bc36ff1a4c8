package system

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// sockstatCollector exports node_sockstat_* from /proc/net/sockstat and
// /proc/net/sockstat6.
type sockstatCollector struct {
	paths    Paths
	pageSize float64
	descs    *descCache
}

func newSockstatCollector(paths Paths) *sockstatCollector {
	return &sockstatCollector{paths: paths, pageSize: float64(os.Getpagesize()), descs: newDescCache()}
}

// sockStat is one exported number: Name "TCP_inuse", or "sockets_used".
type sockStat struct {
	Name  string
	Help  string
	Value float64
}

// sockstatKeys are the per-protocol fields node_exporter exports (through
// procfs, which knows exactly these); others the kernel may add are ignored
// so that the metric set stays node_exporter's.
var sockstatKeys = map[string]bool{"inuse": true, "orphan": true, "tw": true, "alloc": true, "mem": true, "memory": true}

// Update implements exporter.Collector.
func (c *sockstatCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	found := 0
	for _, file := range []string{"sockstat", "sockstat6"} {
		path := c.paths.proc("net", file)
		var stats []sockStat
		err := withFile(path, func(data []byte) (err error) {
			stats, err = parseSockstat(string(data), file == "sockstat6", c.pageSize)
			if err != nil {
				return fmt.Errorf("parsing %s: %w", path, err)
			}
			return nil
		})
		if errors.Is(err, fs.ErrNotExist) {
			continue // sockstat6 is absent without IPv6
		}
		if err != nil {
			return fmt.Errorf("reading socket statistics: %w", err)
		}
		found++
		for _, s := range stats {
			desc := c.descs.get(namespace+"_sockstat_"+s.Name, s.Help)
			m, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, s.Value)
			if err != nil {
				continue
			}
			ch <- m
		}
	}
	if found == 0 {
		return fmt.Errorf("reading socket statistics: neither %s nor %s exists", c.paths.proc("net", "sockstat"), c.paths.proc("net", "sockstat6"))
	}
	return nil
}

// parseSockstat parses lines like "TCP: inuse 4 orphan 0 tw 4 alloc 4 mem 25".
// "mem" counts pages, so a mem_bytes value is derived from it; the
// "sockets: used N" line of the IPv4 file becomes sockets_used.
func parseSockstat(data string, ipv6 bool, pageSize float64) ([]sockStat, error) {
	var out []sockStat
	for line := range strings.Lines(data) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		proto := strings.TrimSuffix(fields[0], ":")
		if len(fields)%2 != 1 || proto == fields[0] {
			return nil, fmt.Errorf("line %q: want \"PROTO: key value …\"", strings.TrimSpace(line))
		}
		for i := 1; i < len(fields); i += 2 {
			key := fields[i]
			v, err := strconv.ParseFloat(fields[i+1], 64)
			if err != nil {
				return nil, fmt.Errorf("parsing %s %s: %w", proto, key, err)
			}
			if proto == "sockets" {
				if key == "used" && !ipv6 {
					out = append(out, sockStat{Name: "sockets_used", Help: "Number of IPv4 sockets in use.", Value: v})
				}
				continue
			}
			if !sockstatKeys[key] {
				continue
			}
			out = append(out, sockStat{Name: proto + "_" + key, Help: fmt.Sprintf("Number of %s sockets in state %s.", proto, key), Value: v})
			if key == "mem" {
				out = append(out, sockStat{Name: proto + "_mem_bytes", Help: fmt.Sprintf("Number of %s sockets in state mem_bytes.", proto), Value: v * pageSize})
			}
		}
	}
	return out, nil
}

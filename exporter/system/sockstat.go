package system

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

// sockstatCollector exports node_sockstat_* from /proc/net/sockstat and
// /proc/net/sockstat6, read with procfs exactly as node_exporter does
// (gopsutil has no sockstat reader).
type sockstatCollector struct {
	proc     procfs.FS
	pageSize float64
	descs    *descCache
}

func newSockstatCollector(paths Paths) (*sockstatCollector, error) {
	proc, err := procfs.NewFS(paths.Proc)
	if err != nil {
		return nil, fmt.Errorf("opening procfs at %s: %w", paths.Proc, err)
	}
	return &sockstatCollector{proc: proc, pageSize: float64(os.Getpagesize()), descs: newDescCache()}, nil
}

// Update implements exporter.Collector.
func (c *sockstatCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	found := 0
	for _, read := range []func() (*procfs.NetSockstat, error){c.proc.NetSockstat, c.proc.NetSockstat6} {
		stat, err := read()
		if errors.Is(err, fs.ErrNotExist) {
			continue // sockstat6 is absent without IPv6
		}
		if err != nil {
			return fmt.Errorf("reading socket statistics: %w", err)
		}
		found++
		c.publish(ch, stat)
	}
	if found == 0 {
		return errors.New("reading socket statistics: neither net/sockstat nor net/sockstat6 exists")
	}
	return nil
}

// publish sends one file's statistics. Only the IPv4 file has the
// "sockets: used N" line (procfs leaves Used nil for IPv6); "mem" counts
// pages, so node_exporter derives a mem_bytes value from it.
func (c *sockstatCollector) publish(ch chan<- prometheus.Metric, s *procfs.NetSockstat) {
	if s.Used != nil {
		c.send(ch, "sockets_used", "Number of IPv4 sockets in use.", float64(*s.Used))
	}
	for _, p := range s.Protocols {
		for _, f := range []struct {
			name  string
			value *int
		}{
			{"inuse", &p.InUse}, {"orphan", p.Orphan}, {"tw", p.TW},
			{"alloc", p.Alloc}, {"mem", p.Mem}, {"memory", p.Memory},
		} {
			if f.value == nil {
				continue
			}
			c.send(ch, p.Protocol+"_"+f.name, "Number of "+p.Protocol+" sockets in state "+f.name+".", float64(*f.value))
		}
		if p.Mem != nil {
			c.send(ch, p.Protocol+"_mem_bytes", "Number of "+p.Protocol+" sockets in state mem_bytes.", float64(*p.Mem)*c.pageSize)
		}
	}
}

func (c *sockstatCollector) send(ch chan<- prometheus.Metric, name, help string, v float64) {
	desc := c.descs.get(namespace+"_sockstat_"+name, help)
	m, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, v)
	if err != nil {
		return // a protocol name a metric cannot carry; skip it, keep the rest
	}
	ch <- m
}

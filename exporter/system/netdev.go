package system

import (
	"context"
	"fmt"
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

// netDevFields are the columns of /proc/net/dev, named as node_exporter
// names them (its netlink path maps to the same legacy names by default),
// with procfs's value for each.
var netDevFields = [16]struct {
	name string
	get  func(*procfs.NetDevLine) uint64
}{
	{"receive_bytes", func(l *procfs.NetDevLine) uint64 { return l.RxBytes }},
	{"receive_packets", func(l *procfs.NetDevLine) uint64 { return l.RxPackets }},
	{"receive_errs", func(l *procfs.NetDevLine) uint64 { return l.RxErrors }},
	{"receive_drop", func(l *procfs.NetDevLine) uint64 { return l.RxDropped }},
	{"receive_fifo", func(l *procfs.NetDevLine) uint64 { return l.RxFIFO }},
	{"receive_frame", func(l *procfs.NetDevLine) uint64 { return l.RxFrame }},
	{"receive_compressed", func(l *procfs.NetDevLine) uint64 { return l.RxCompressed }},
	{"receive_multicast", func(l *procfs.NetDevLine) uint64 { return l.RxMulticast }},
	{"transmit_bytes", func(l *procfs.NetDevLine) uint64 { return l.TxBytes }},
	{"transmit_packets", func(l *procfs.NetDevLine) uint64 { return l.TxPackets }},
	{"transmit_errs", func(l *procfs.NetDevLine) uint64 { return l.TxErrors }},
	{"transmit_drop", func(l *procfs.NetDevLine) uint64 { return l.TxDropped }},
	{"transmit_fifo", func(l *procfs.NetDevLine) uint64 { return l.TxFIFO }},
	{"transmit_colls", func(l *procfs.NetDevLine) uint64 { return l.TxCollisions }},
	{"transmit_carrier", func(l *procfs.NetDevLine) uint64 { return l.TxCarrier }},
	{"transmit_compressed", func(l *procfs.NetDevLine) uint64 { return l.TxCompressed }},
}

var netDevDescs = func() [16]*prometheus.Desc {
	var descs [16]*prometheus.Desc
	for i, f := range netDevFields {
		descs[i] = prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "network", f.name+"_total"),
			"Network device statistic "+f.name+".",
			[]string{"device"}, nil,
		)
	}
	return descs
}()

// netdevCollector exports node_network_{receive,transmit}_*_total{device}
// from /proc/net/dev (under --path.procfs), read with procfs as
// node_exporter does without netlink.
//
// Not gopsutil's net.IOCounters: it keeps 10 of the 16 columns, and
// node_exporter publishes all 16 (frame, compressed, multicast, colls,
// carrier…). Not netlink as node_exporter 1.5 does by default: the counters
// are the same kernel numbers and the file honours --path.procfs. The only
// netlink-only counter, receive_nohandler, is not exported.
type netdevCollector struct {
	proc          procfs.FS
	deviceExclude *regexp.Regexp
}

func newNetdevCollector(paths Paths, deviceExclude string) (*netdevCollector, error) {
	fs, err := procfs.NewFS(paths.Proc)
	if err != nil {
		return nil, fmt.Errorf("opening procfs at %s: %w", paths.Proc, err)
	}
	c := &netdevCollector{proc: fs}
	if deviceExclude != "" {
		re, err := regexp.Compile(deviceExclude)
		if err != nil {
			return nil, fmt.Errorf("invalid --collector.netdev.device-exclude %q: %w", deviceExclude, err)
		}
		c.deviceExclude = re
	}
	return c, nil
}

// Update implements exporter.Collector.
func (c *netdevCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	devices, err := c.proc.NetDev()
	if err != nil {
		return fmt.Errorf("reading network device stats: %w", err)
	}
	for name, line := range devices {
		if c.deviceExclude != nil && c.deviceExclude.MatchString(name) {
			continue
		}
		for i, f := range netDevFields {
			ch <- prometheus.MustNewConstMetric(netDevDescs[i], prometheus.CounterValue, float64(f.get(&line)), name)
		}
	}
	return nil
}

package system

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// netDevFields are the columns of /proc/net/dev, named as node_exporter
// names them (its netlink path maps to the same legacy names by default).
var netDevFields = [16]string{
	"receive_bytes", "receive_packets", "receive_errs", "receive_drop",
	"receive_fifo", "receive_frame", "receive_compressed", "receive_multicast",
	"transmit_bytes", "transmit_packets", "transmit_errs", "transmit_drop",
	"transmit_fifo", "transmit_colls", "transmit_carrier", "transmit_compressed",
}

var netDevDescs = func() [16]*prometheus.Desc {
	var descs [16]*prometheus.Desc
	for i, f := range netDevFields {
		descs[i] = prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "network", f+"_total"),
			"Network device statistic "+f+".",
			[]string{"device"}, nil,
		)
	}
	return descs
}()

// netDevice is one interface's row of /proc/net/dev.
type netDevice struct {
	Name   string
	Values [16]float64
}

// netdevCollector exports node_network_{receive,transmit}_*_total{device}.
//
// It reads /proc/net/dev (under --path.procfs) rather than asking the kernel
// over netlink as node_exporter 1.5 does by default: the counters are the
// same kernel numbers, the file honours --path.procfs, and one read is
// cheaper than a netlink dump. The only netlink-only counter,
// receive_nohandler, is not exported.
type netdevCollector struct {
	paths         Paths
	deviceExclude *regexp.Regexp
}

func newNetdevCollector(paths Paths, deviceExclude string) (*netdevCollector, error) {
	c := &netdevCollector{paths: paths}
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
	var devices []netDevice
	err := withFile(c.paths.proc("net", "dev"), func(data []byte) (err error) {
		devices, err = parseNetDev(string(data))
		return err
	})
	if err != nil {
		return fmt.Errorf("reading network device stats: %w", err)
	}
	for _, d := range devices {
		if c.deviceExclude != nil && c.deviceExclude.MatchString(d.Name) {
			continue
		}
		for i, v := range d.Values {
			ch <- prometheus.MustNewConstMetric(netDevDescs[i], prometheus.CounterValue, v, d.Name)
		}
	}
	return nil
}

// parseNetDev parses /proc/net/dev: two header lines, then
// "  name: 16 counters" per interface.
func parseNetDev(data string) ([]netDevice, error) {
	var out []netDevice
	lineNo := 0
	for line := range strings.Lines(data) {
		lineNo++
		if lineNo <= 2 {
			continue
		}
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			if strings.TrimSpace(line) == "" {
				continue
			}
			return nil, fmt.Errorf("parsing net/dev line %d %q: no interface name", lineNo, strings.TrimSpace(line))
		}
		fields := strings.Fields(rest)
		if len(fields) != len(netDevFields) {
			return nil, fmt.Errorf("parsing net/dev line %d %q: want %d counters, got %d", lineNo, strings.TrimSpace(line), len(netDevFields), len(fields))
		}
		d := netDevice{Name: strings.TrimSpace(name)}
		for i, f := range fields {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("parsing %s of %s: %w", netDevFields[i], d.Name, err)
			}
			d.Values[i] = float64(v)
		}
		out = append(out, d)
	}
	return out, nil
}

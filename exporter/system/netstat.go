package system

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// defaultNetstatFields is node_exporter 1.5's --collector.netstat.fields.
const defaultNetstatFields = `^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$`

// netstatCollector exports node_netstat_<Proto>_<Field> from
// /proc/net/netstat, /proc/net/snmp and /proc/net/snmp6, filtered by
// --collector.netstat.fields. Like node_exporter it publishes them untyped.
type netstatCollector struct {
	paths Paths
	// fields caches the --collector.netstat.fields verdict per
	// (protocol, field), which avoids building "Proto_Field" for the
	// hundreds of fields that are not exported.
	fields *matchCache[[2]string]
	descs  *descCache
}

func newNetstatCollector(paths Paths, fields string) (*netstatCollector, error) {
	re, err := regexp.Compile(fields)
	if err != nil {
		return nil, fmt.Errorf("invalid --collector.netstat.fields %q: %w", fields, err)
	}
	cache := &matchCache[[2]string]{
		matches: func(k [2]string) bool { return re.MatchString(k[0] + "_" + k[1]) },
		prev:    map[[2]string]bool{},
	}
	return &netstatCollector{paths: paths, fields: cache, descs: newDescCache()}, nil
}

// netStat is one counter: Proto "Tcp", Field "CurrEstab".
type netStat struct {
	Proto, Field string
	Value        float64
}

// Update implements exporter.Collector.
func (c *netstatCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.fields.begin()
	defer c.fields.end()
	keep := func(proto, field string) bool { return c.fields.match([2]string{proto, field}) }

	var stats []netStat
	for _, file := range []string{"netstat", "snmp"} {
		path := c.paths.proc("net", file)
		err := withFile(path, func(data []byte) error {
			s, err := parseNetstatPairs(string(data), keep)
			if err != nil {
				return fmt.Errorf("parsing %s: %w", path, err)
			}
			stats = append(stats, s...)
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading network statistics: %w", err)
		}
	}
	// A kernel booted without IPv6 has no snmp6; that is not an error.
	path := c.paths.proc("net", "snmp6")
	err := withFile(path, func(data []byte) error {
		s, err := parseSNMP6(string(data), keep)
		if err != nil {
			return fmt.Errorf("parsing %s: %w", path, err)
		}
		stats = append(stats, s...)
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading IPv6 network statistics: %w", err)
	}

	for _, s := range stats {
		key := s.Proto + "_" + s.Field
		desc := c.descs.get(namespace+"_netstat_"+key, "Statistic "+s.Proto+s.Field+".")
		m, err := prometheus.NewConstMetric(desc, prometheus.UntypedValue, s.Value)
		if err != nil {
			continue // a field name a metric cannot carry; skip it, keep the rest
		}
		ch <- m
	}
	return nil
}

// parseNetstatPairs parses the header/value line pairs of /proc/net/netstat
// and /proc/net/snmp ("Tcp: RtoAlgorithm RtoMin …" then "Tcp: 1 200 …"),
// returning the fields keep accepts (only those values are parsed: the
// files hold hundreds of counters and few are exported).
func parseNetstatPairs(data string, keep func(proto, field string) bool) ([]netStat, error) {
	var out []netStat
	for lineNo := 1; data != ""; lineNo += 2 {
		var header, values string
		header, data, _ = strings.Cut(data, "\n")
		if strings.TrimSpace(header) == "" {
			continue
		}
		values, data, _ = strings.Cut(data, "\n")
		names := strings.Fields(header)
		vals := strings.Fields(values)
		if len(names) == 0 || len(names) != len(vals) || names[0] != vals[0] {
			return nil, fmt.Errorf("line %d: header %q does not match values %q", lineNo, header, values)
		}
		proto := strings.TrimSuffix(names[0], ":")
		for j := 1; j < len(names); j++ {
			if !keep(proto, names[j]) {
				continue
			}
			v, err := strconv.ParseFloat(vals[j], 64)
			if err != nil {
				return nil, fmt.Errorf("parsing %s%s: %w", proto, names[j], err)
			}
			out = append(out, netStat{Proto: proto, Field: names[j], Value: v})
		}
	}
	return out, nil
}

// parseSNMP6 parses /proc/net/snmp6 ("Ip6InReceives  123" per line): the
// protocol is the name up to and including its first "6". It returns the
// fields keep accepts.
func parseSNMP6(data string, keep func(proto, field string) bool) ([]netStat, error) {
	var out []netStat
	for data != "" {
		var line string
		line, data, _ = strings.Cut(data, "\n")
		line = strings.TrimSpace(line)
		end := strings.IndexAny(line, " \t")
		if end < 0 {
			continue
		}
		name, value := line[:end], strings.TrimSpace(line[end:])
		six := strings.IndexByte(name, '6')
		if six < 0 {
			continue
		}
		proto, field := name[:six+1], name[six+1:]
		if !keep(proto, field) {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", name, err)
		}
		out = append(out, netStat{Proto: proto, Field: field, Value: v})
	}
	return out, nil
}

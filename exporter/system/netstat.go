package system

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"regexp"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

// defaultNetstatFields is node_exporter 1.5's --collector.netstat.fields.
const defaultNetstatFields = `^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$`

// netstatCollector exports node_netstat_<Proto>_<Field> from
// /proc/net/netstat, /proc/net/snmp and /proc/net/snmp6 (the agent's network
// namespace, like node_exporter), filtered by --collector.netstat.fields.
// Like node_exporter it publishes them untyped.
//
// The files are read with procfs (ProcNetstat, ProcSnmp, ProcSnmp6), whose
// structs name each protocol and counter exactly as the kernel does
// (TcpExt.ListenOverflows); the names node_exporter builds are read off
// those structs. gopsutil's net.ProtoCounters is not used: it reads only
// /proc/net/snmp, without TcpExt, IpExt and the IPv6 counters.
type netstatCollector struct {
	proc procfs.FS
	// selected are the counters --collector.netstat.fields keeps, with
	// their descriptors: procfs's structs fix the set of counters, so the
	// regexp is matched once, not per scrape.
	selected [3][]netstatCounter

	mu   sync.Mutex
	self *procfs.Proc // resolved on first use; a process keeps its PID
}

// netstatCounter is one exported counter.
type netstatCounter struct {
	counterField
	desc *prometheus.Desc
}

func newNetstatCollector(paths Paths, fields string) (*netstatCollector, error) {
	re, err := regexp.Compile(fields)
	if err != nil {
		return nil, fmt.Errorf("invalid --collector.netstat.fields %q: %w", fields, err)
	}
	proc, err := procfs.NewFS(paths.Proc)
	if err != nil {
		return nil, fmt.Errorf("opening procfs at %s: %w", paths.Proc, err)
	}
	c := &netstatCollector{proc: proc}
	for i, all := range [3][]counterField{netstatFields, snmpFields, snmp6Fields} {
		for _, f := range all {
			name := f.proto + "_" + f.field
			if !re.MatchString(name) {
				continue
			}
			desc := prometheus.NewDesc(namespace+"_netstat_"+name, "Statistic "+f.proto+f.field+".", nil, nil)
			c.selected[i] = append(c.selected[i], netstatCounter{counterField: f, desc: desc})
		}
	}
	return c, nil
}

// Update implements exporter.Collector.
func (c *netstatCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	self, err := c.selfProc()
	if err != nil {
		return fmt.Errorf("reading network statistics: %w", err)
	}
	netstat, err := self.Netstat()
	if err != nil {
		return fmt.Errorf("reading network statistics: %w", err)
	}
	snmp, err := self.Snmp()
	if err != nil {
		return fmt.Errorf("reading network statistics: %w", err)
	}
	// A kernel booted without IPv6 has no snmp6; that is not an error.
	snmp6, err := self.Snmp6()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading IPv6 network statistics: %w", err)
	}
	for i, stats := range [3]any{&netstat, &snmp, &snmp6} {
		for _, f := range c.selected[i] {
			if v, ok := f.value(stats); ok {
				ch <- prometheus.MustNewConstMetric(f.desc, prometheus.UntypedValue, v)
			}
		}
	}
	return nil
}

// selfProc is this process's procfs entry: /proc/net is a link to
// /proc/self/net, so the files are read through it.
func (c *netstatCollector) selfProc() (procfs.Proc, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.self == nil {
		p, err := c.proc.Self()
		if err != nil {
			return procfs.Proc{}, err
		}
		c.self = &p
	}
	return *c.self, nil
}

// counterField is one *float64 counter of a procfs netstat/snmp struct:
// the embedded struct's type name is the protocol ("TcpExt"), the field's
// name the counter ("ListenOverflows").
type counterField struct {
	proto, field string
	index        []int
}

// value returns the counter in stats (a pointer to the struct the field was
// found in), and false when the kernel did not report it.
func (f counterField) value(stats any) (float64, bool) {
	p := reflect.ValueOf(stats).Elem().FieldByIndex(f.index)
	if p.IsNil() {
		return 0, false
	}
	return p.Elem().Float(), true
}

var (
	float64PtrType = reflect.TypeFor[*float64]()
	netstatFields  = counterFields(reflect.TypeFor[procfs.ProcNetstat]())
	snmpFields     = counterFields(reflect.TypeFor[procfs.ProcSnmp]())
	snmp6Fields    = counterFields(reflect.TypeFor[procfs.ProcSnmp6]())
)

// counterFields lists the counters of a procfs struct made of one embedded
// struct per protocol.
func counterFields(t reflect.Type) []counterField {
	var out []counterField
	for _, proto := range reflect.VisibleFields(t) {
		if !proto.Anonymous || proto.Type.Kind() != reflect.Struct {
			continue
		}
		for i := range proto.Type.NumField() {
			f := proto.Type.Field(i)
			if f.Type != float64PtrType {
				continue
			}
			out = append(out, counterField{proto: proto.Type.Name(), field: f.Name, index: append(append([]int(nil), proto.Index...), i)})
		}
	}
	return out
}

package system

import (
	"testing"

	"github.com/prometheus/procfs"
)

// TestNetstatCounterFields checks the names read off procfs's structs: they
// must be the kernel's protocol and counter names, which node_exporter
// joins into node_netstat_<Proto>_<Field>.
func TestNetstatCounterFields(t *testing.T) {
	names := map[[2]string]bool{}
	for _, fields := range [][]counterField{netstatFields, snmpFields, snmp6Fields} {
		for _, f := range fields {
			key := [2]string{f.proto, f.field}
			if names[key] {
				t.Errorf("counter %s_%s listed twice", f.proto, f.field)
			}
			names[key] = true
		}
	}
	for _, want := range [][2]string{
		{"TcpExt", "ListenOverflows"}, {"TcpExt", "TCPSynRetrans"}, {"IpExt", "InOctets"},
		{"Ip", "Forwarding"}, {"Icmp", "InMsgs"}, {"IcmpMsg", "InType3"}, {"Tcp", "CurrEstab"},
		{"Udp", "InDatagrams"}, {"UdpLite", "InDatagrams"},
		{"Ip6", "InOctets"}, {"Icmp6", "InMsgs"}, {"Udp6", "RcvbufErrors"}, {"UdpLite6", "InErrors"},
	} {
		if !names[want] {
			t.Errorf("no counter %s_%s among procfs's fields", want[0], want[1])
		}
	}
	// Counters of the same name in two protocols are told apart.
	udp, lite := 7.0, 9.0
	var snmp procfs.ProcSnmp
	snmp.Udp.InDatagrams, snmp.UdpLite.InDatagrams = &udp, &lite
	got := map[string]float64{}
	for _, f := range snmpFields {
		if v, ok := f.value(&snmp); ok {
			got[f.proto+"_"+f.field] = v
		}
	}
	if len(got) != 2 || got["Udp_InDatagrams"] != 7 || got["UdpLite_InDatagrams"] != 9 {
		t.Errorf("values read = %v, want only Udp_InDatagrams 7 and UdpLite_InDatagrams 9 (absent counters skipped)", got)
	}
}

func TestMicrosToSeconds(t *testing.T) {
	if microsToSeconds(213477786) != 213.47778599999998 {
		t.Errorf("microsToSeconds must print like node_exporter: got %v", microsToSeconds(213477786))
	}
}

package system

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	st, err := parseProcStat([]byte("cpu  10 20 30 40 50 60 70 80 90 100\n" +
		"cpu0 1 2 3 4 5 6 7 8 9 10\n" +
		"cpu2 100 0 0 250 0 0 0 0\n" + // older kernel: no guest columns; cpu1 offline
		"intr 5 1 2 3\nctxt 9\nbtime 1700000000\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]cpuTimes{
		0: {User: 0.01, Nice: 0.02, System: 0.03, Idle: 0.04, Iowait: 0.05, IRQ: 0.06, SoftIRQ: 0.07, Steal: 0.08, Guest: 0.09, GuestNice: 0.1},
		2: {User: 1, Idle: 2.5},
	}
	if !reflect.DeepEqual(st.CPUs, want) {
		t.Errorf("CPUs = %+v, want %+v", st.CPUs, want)
	}
	if !st.HasBootTime || st.BootTime != 1700000000 {
		t.Errorf("boot time = %v (present %v), want 1700000000", st.BootTime, st.HasBootTime)
	}

	for _, bad := range []string{"cpu0 1 2 3\n", "cpu0 1 2 x 4\n", "cpu1x 1 2 3 4\n", "btime soon\n"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) succeeded, want an error", bad)
		}
	}
	// A huge intr line (thousands of IRQs) must not break the scanner.
	big := "cpu0 1 2 3 4\nintr " + strings.Repeat("0 ", 100_000) + "\nbtime 5\n"
	if st, err := parseProcStat([]byte(big)); err != nil || st.BootTime != 5 {
		t.Errorf("long intr line: boot time %v, err %v", st.BootTime, err)
	}
}

func TestMergeCPUTimes(t *testing.T) {
	prev := cpuTimes{User: 100, System: 50, Idle: 1000, Iowait: 10}
	tests := []struct {
		name          string
		now           cpuTimes
		want          cpuTimes
		wantReset     bool
		wantBackwards []string
	}{
		{"all forward", cpuTimes{User: 101, System: 51, Idle: 1001, Iowait: 11}, cpuTimes{User: 101, System: 51, Idle: 1001, Iowait: 11}, false, nil},
		{"iowait wobbles back: held", cpuTimes{User: 101, System: 51, Idle: 1001, Iowait: 9.99}, cpuTimes{User: 101, System: 51, Idle: 1001, Iowait: 10}, false, []string{"iowait"}},
		{"idle back less than 3s: held", cpuTimes{User: 101, System: 51, Idle: 997.5, Iowait: 11}, cpuTimes{User: 101, System: 51, Idle: 1000, Iowait: 11}, false, []string{"idle"}},
		{"idle back 3s or more: hotplug reset", cpuTimes{User: 1, Idle: 997}, cpuTimes{User: 1, Idle: 997}, true, nil},
		{"first reading", prev, prev, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := prev
			if tt.name == "first reading" {
				p = cpuTimes{}
			}
			got, reset, backwards := mergeCPUTimes(p, tt.now)
			if got != tt.want || reset != tt.wantReset || !reflect.DeepEqual(backwards, tt.wantBackwards) {
				t.Errorf("mergeCPUTimes = %+v, reset %v, backwards %v; want %+v, %v, %v", got, reset, backwards, tt.want, tt.wantReset, tt.wantBackwards)
			}
		})
	}
}

// TestCPUCountersNeverGoBackwards drives the collector's memory through a
// sequence of readings, including a CPU going offline and coming back.
func TestCPUCountersNeverGoBackwards(t *testing.T) {
	c, err := newCPUCollector(Paths{Proc: "testdata/proc", Sys: "testdata/sys"}, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		fresh map[int]cpuTimes
		want  map[int]cpuTimes
	}{
		{map[int]cpuTimes{0: {User: 10, Idle: 100}, 1: {User: 5, Idle: 50}}, map[int]cpuTimes{0: {User: 10, Idle: 100}, 1: {User: 5, Idle: 50}}},
		{map[int]cpuTimes{0: {User: 9.99, Idle: 101}, 1: {User: 6, Idle: 51}}, map[int]cpuTimes{0: {User: 10, Idle: 101}, 1: {User: 6, Idle: 51}}},
		{map[int]cpuTimes{0: {User: 11, Idle: 102}}, map[int]cpuTimes{0: {User: 11, Idle: 102}}},                                                   // cpu1 offline
		{map[int]cpuTimes{0: {User: 12, Idle: 103}, 1: {User: 0.5, Idle: 1}}, map[int]cpuTimes{0: {User: 12, Idle: 103}, 1: {User: 0.5, Idle: 1}}}, // back from zero
	}
	for i, s := range steps {
		if got := c.advance(s.fresh); !reflect.DeepEqual(got, s.want) {
			t.Errorf("step %d: got %+v, want %+v", i, got, s.want)
		}
	}
}

func TestParseLoadavg(t *testing.T) {
	got, err := parseLoadavg("0.21 0.37 0.39 1/80 3339\n")
	if err != nil || got != [3]float64{0.21, 0.37, 0.39} {
		t.Errorf("parseLoadavg = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0.1 0.2\n", "0.1 x 0.3 1/2 3\n"} {
		if _, err := parseLoadavg(bad); err == nil {
			t.Errorf("parseLoadavg(%q) succeeded", bad)
		}
	}
}

func TestParseMeminfo(t *testing.T) {
	got, err := parseMeminfo("MemTotal:       16318428 kB\nActive(anon):     123 kB\n\nHugePages_Total:       2\nNr_Foo_total: 7\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []memField{
		{"MemTotal_bytes", 16318428 * 1024},
		{"Active_anon_bytes", 123 * 1024},
		{"HugePages_Total", 2},
		{"Nr_Foo_total", 7},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseMeminfo = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"MemTotal 12 kB\n", "MemTotal: x kB\n", "MemTotal: 1 kB extra\n"} {
		if _, err := parseMeminfo(bad); err == nil {
			t.Errorf("parseMeminfo(%q) succeeded", bad)
		}
	}
}

func TestParseNetDev(t *testing.T) {
	data := "Inter-|   Receive |  Transmit\n face |bytes ...\n" +
		"    lo:  10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n" +
		"eth0:20 2 3 4 5 6 7 8 30 9 10 11 12 13 14 15\n"
	got, err := parseNetDev(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []netDevice{
		{Name: "lo", Values: [16]float64{10, 1, 0, 0, 0, 0, 0, 0, 10, 1}},
		{Name: "eth0", Values: [16]float64{20, 2, 3, 4, 5, 6, 7, 8, 30, 9, 10, 11, 12, 13, 14, 15}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseNetDev = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"h\nh\neth0: 1 2 3\n", "h\nh\neth0 1 2\n", "h\nh\neth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 -1\n"} {
		if _, err := parseNetDev(bad); err == nil {
			t.Errorf("parseNetDev(%q) succeeded", bad)
		}
	}
}

func TestParseNetstat(t *testing.T) {
	all := func(string, string) bool { return true }
	got, err := parseNetstatPairs("Tcp: RtoMin CurrEstab\nTcp: 200 7\nUdp: InDatagrams\nUdp: 42\n", all)
	if err != nil {
		t.Fatal(err)
	}
	want := []netStat{{"Tcp", "RtoMin", 200}, {"Tcp", "CurrEstab", 7}, {"Udp", "InDatagrams", 42}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseNetstatPairs = %+v, want %+v", got, want)
	}
	// Only kept fields are parsed (and only they can fail to parse).
	onlyCurrEstab := func(proto, field string) bool { return proto == "Tcp" && field == "CurrEstab" }
	got, err = parseNetstatPairs("Tcp: RtoMin CurrEstab\nTcp: junk 7\n", onlyCurrEstab)
	if want := []netStat{{"Tcp", "CurrEstab", 7}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("filtered parseNetstatPairs = %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{"Tcp: A B\n", "Tcp: A B\nTcp: 1\n", "Tcp: A\nUdp: 1\n", "Tcp: A\nTcp: x\n"} {
		if _, err := parseNetstatPairs(bad, all); err == nil {
			t.Errorf("parseNetstatPairs(%q) succeeded", bad)
		}
	}

	got6, err := parseSNMP6("Ip6InOctets   \t 128\nIcmp6InMsgs 1\nUdpLite6InErrors 0\nNoSix 3\n", all)
	if err != nil {
		t.Fatal(err)
	}
	want6 := []netStat{{"Ip6", "InOctets", 128}, {"Icmp6", "InMsgs", 1}, {"UdpLite6", "InErrors", 0}}
	if !reflect.DeepEqual(got6, want6) {
		t.Errorf("parseSNMP6 = %+v, want %+v", got6, want6)
	}
	if _, err := parseSNMP6("Ip6InOctets x\n", all); err == nil {
		t.Error("parseSNMP6 accepted a non-numeric value")
	}
}

func TestParseSockstat(t *testing.T) {
	got, err := parseSockstat("sockets: used 229\nTCP: inuse 12 orphan 1 tw 7 alloc 15 mem 25 future 9\nFRAG: inuse 0 memory 4096\n", false, 4096)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	values := map[string]float64{}
	for _, s := range got {
		names = append(names, s.Name)
		values[s.Name] = s.Value
	}
	wantNames := []string{"sockets_used", "TCP_inuse", "TCP_orphan", "TCP_tw", "TCP_alloc", "TCP_mem", "TCP_mem_bytes", "FRAG_inuse", "FRAG_memory"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("names = %v, want %v (unknown fields such as future are dropped)", names, wantNames)
	}
	if values["TCP_mem_bytes"] != 25*4096 || values["FRAG_memory"] != 4096 || values["sockets_used"] != 229 {
		t.Errorf("values = %v", values)
	}
	if got[0].Help != "Number of IPv4 sockets in use." || got[1].Help != "Number of TCP sockets in state inuse." {
		t.Errorf("help texts differ from node_exporter's: %q, %q", got[0].Help, got[1].Help)
	}
	for _, bad := range []string{"TCP: inuse\n", "TCP inuse 1\n", "TCP: inuse x\n"} {
		if _, err := parseSockstat(bad, false, 4096); err == nil {
			t.Errorf("parseSockstat(%q) succeeded", bad)
		}
	}
}

func TestParsePSI(t *testing.T) {
	got, err := parsePSI("some avg10=0.00 avg60=0.12 avg300=0.30 total=213477786\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=5\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := (psiTotals{Some: 213477786, Full: 5, HasSome: true, HasFull: true}); got != want {
		t.Errorf("parsePSI = %+v, want %+v", got, want)
	}
	// Older kernels have no "full" line for cpu.
	got, err = parsePSI("some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n")
	if err != nil || got != (psiTotals{Some: 7, HasSome: true}) {
		t.Errorf("parsePSI(some only) = %+v, %v", got, err)
	}
	if microsToSeconds(213477786) != 213.47778599999998 {
		t.Errorf("microsToSeconds must print like node_exporter: got %v", microsToSeconds(213477786))
	}
	for _, bad := range []string{"some avg10=0.00\n", "some total=x\n"} {
		if _, err := parsePSI(bad); err == nil {
			t.Errorf("parsePSI(%q) succeeded", bad)
		}
	}
}

func TestParseCPUList(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []int
	}{
		{"", nil}, {"\n", nil}, {"3\n", []int{3}}, {"0-2,7,9-10", []int{0, 1, 2, 7, 9, 10}},
	} {
		got, err := parseCPUList(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseCPUList(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"a", "3-1", "1-x"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q) succeeded", bad)
		}
	}
}

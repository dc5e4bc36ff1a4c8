package system

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/berth-dev/berth/exporter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/shirou/gopsutil/v4/disk"
)

var update = flag.Bool("update", false, "rewrite golden files from the current output")

// statfsResult is what statfs(2) reports for one filesystem.
type statfsResult struct {
	Bsize, Blocks, Bfree, Bavail, Files, Ffree uint64
}

// usage is what gopsutil's disk.Usage returns for that statfs result.
func (s statfsResult) usage(path string) *disk.UsageStat {
	return &disk.UsageStat{
		Path:        path,
		Total:       s.Blocks * s.Bsize,
		Free:        s.Bavail * s.Bsize,
		Used:        (s.Blocks - s.Bfree) * s.Bsize,
		InodesTotal: s.Files,
		InodesFree:  s.Ffree,
		InodesUsed:  s.Files - s.Ffree,
	}
}

// fakeStatfs answers disk usage from a table keyed by path; unknown paths
// fail with ENOENT, paths in errs with that error.
type fakeStatfs struct {
	stats map[string]statfsResult
	errs  map[string]error
}

func (f fakeStatfs) usage(_ context.Context, path string) (*disk.UsageStat, error) {
	if err, ok := f.errs[path]; ok {
		return nil, err
	}
	st, ok := f.stats[path]
	if !ok {
		return nil, syscall.ENOENT
	}
	return st.usage(path), nil
}

// fixtureStatfs is the statfs view of the mounts in testdata/proc/1/mountinfo.
var fixtureStatfs = fakeStatfs{
	stats: map[string]statfsResult{
		"/":                 {Bsize: 4096, Blocks: 10_000_000, Bfree: 6_000_000, Bavail: 5_500_000, Files: 2_621_440, Ffree: 2_400_000},
		"/run":              {Bsize: 4096, Blocks: 200_808, Bfree: 200_500, Bavail: 200_500, Files: 1_003_000, Ffree: 1_002_100},
		"/boot/efi":         {Bsize: 512, Blocks: 218_096, Bfree: 206_390, Bavail: 206_390},
		"/data":             {Bsize: 4096, Blocks: 52_428_800, Bfree: 41_000_000, Bavail: 41_000_000, Files: 104_857_600, Ffree: 104_800_000},
		"/srv/backup disk":  {Bsize: 4096, Blocks: 1_000_000, Bfree: 100_000, Bavail: 50_000, Files: 65_536, Ffree: 60_000},
		"/snap/core22/1122": {Bsize: 131072, Blocks: 593, Files: 11_000},
	},
	// A dead NFS server answering with an error (a hanging one is tested in
	// filesystem_test.go).
	errs: map[string]error{"/mnt/nfs": syscall.EIO},
}

// fixtureConfig points every collector at testdata with node_exporter's
// default flags, a fixed uname and the table statfs.
func fixtureConfig(procfs string) *config {
	return &config{
		paths: Paths{Proc: procfs, Sys: "testdata/sys", Root: "/"},
		filesystem: filesystemOptions{
			MountPointsExclude: defaultMountPointsExclude,
			FSTypesExclude:     defaultFSTypesExclude,
			MountTimeout:       defaultMountTimeout,
		},
		netstatFields: defaultNetstatFields,
		usage:         fixtureStatfs.usage,
		uname: func() (unameInfo, error) {
			return unameInfo{SysName: "Linux", Release: "6.1.0-18-amd64", Version: "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)",
				Machine: "x86_64", NodeName: "app-1", DomainName: "(none)"}, nil
		},
	}
}

func buildAll(t *testing.T, cfg *config) map[string]exporter.Collector {
	t.Helper()
	collectors := map[string]exporter.Collector{}
	for _, name := range collectorNames {
		c, err := cfg.newCollector(name, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("building %s: %v", name, err)
		}
		collectors[name] = c
	}
	return collectors
}

// scrapeText runs one scrape through the real scrape engine and returns the
// text exposition without the (timing-dependent) duration series.
func scrapeText(t testing.TB, ctx context.Context, collectors map[string]exporter.Collector) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporter.NewScraper(collectors, slog.New(slog.DiscardHandler)).ForScrape(ctx))
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if f.GetName() == "berth_scrape_collector_duration_seconds" {
			continue
		}
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

// TestFixtureGolden checks the whole output of all system collectors on the
// testdata tree against testdata/system.golden.prom. Regenerate it with
// `go test ./exporter/system -run TestFixtureGolden -update` and review the
// diff.
func TestFixtureGolden(t *testing.T) {
	got := scrapeText(t, context.Background(), buildAll(t, fixtureConfig("testdata/proc")))
	golden := filepath.Join("testdata", "system.golden.prom")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading golden file (create it with -update): %v", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (rerun with -update and review the diff):\n%s", golden, lineDiff(string(want), got))
	}
}

// lineDiff lists lines only in want (-) or only in got (+).
func lineDiff(want, got string) string {
	count := map[string]int{}
	for _, l := range strings.Split(want, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(got, "\n") {
		count[l]--
	}
	var b strings.Builder
	for l, n := range count {
		switch {
		case n > 0:
			b.WriteString("- " + l + "\n")
		case n < 0:
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// copyTree copies testdata/proc so that a test can break one file.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.Type()&os.ModeSymlink != 0 {
			// procfs's own links (self, net → self/net) stay links.
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		}
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestFaultIsolation breaks one source at a time: the collectors reading it
// report berth_scrape_collector_success 0 and publish nothing, every other
// collector still answers.
func TestFaultIsolation(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(proc string) error
		failed []string
		// noData lists collectors that succeed without their fixture
		// values (nothing to report, or values from another source).
		noData []string
		// gone are metric prefixes that must disappear.
		gone []string
		// still are metric prefixes that must remain.
		still []string
	}{
		{"stat missing", remove("stat"), []string{"boottime", "cpu"}, nil, []string{"node_cpu_", "node_boot_time_seconds"}, nil},
		// boottime reads only the btime line, which is intact here.
		{"stat corrupt", corrupt("stat", "cpu0 12 x 3 4\nbtime 17\n"), []string{"cpu"}, []string{"boottime"}, []string{"node_cpu_seconds_total"}, []string{"node_boot_time_seconds 17"}},
		{"stat without btime", corrupt("stat", "cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 2 3 4 5 6 7 8 9 10\n"), []string{"boottime"}, nil, []string{"node_boot_time_seconds"}, []string{"node_cpu_seconds_total"}},
		// gopsutil answers from sysinfo(2) when /proc/loadavg is unreadable:
		// the load average is not namespaced, so that is the host's too.
		{"loadavg missing", remove("loadavg"), nil, []string{"loadavg"}, nil, []string{"node_load1 ", "node_load5 ", "node_load15 "}},
		{"meminfo corrupt", corrupt("meminfo", "MemTotal: lots kB\n"), []string{"meminfo"}, nil, []string{"node_memory_"}, nil},
		{"mount tables missing", removeAll("1/mountinfo", "1/mounts"), []string{"filesystem"}, nil, []string{"node_filesystem_"}, nil},
		{"net/dev missing", remove("net/dev"), []string{"netdev"}, nil, []string{"node_network_"}, nil},
		{"net/snmp missing", remove("net/snmp"), []string{"netstat"}, nil, []string{"node_netstat_"}, nil},
		{"sockstat missing", removeAll("net/sockstat", "net/sockstat6"), []string{"sockstat"}, nil, []string{"node_sockstat_"}, nil},
		{"no PSI", removeAll("pressure"), nil, []string{"pressure"}, []string{"node_pressure_"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc := copyTree(t, "testdata/proc")
			if err := tt.break_(proc); err != nil {
				t.Fatal(err)
			}
			out := scrapeText(t, context.Background(), buildAll(t, fixtureConfig(proc)))
			failed := map[string]bool{}
			for _, n := range tt.failed {
				failed[n] = true
			}
			for _, name := range collectorNames {
				want := `berth_scrape_collector_success{collector="` + name + `"} 1`
				if failed[name] {
					want = `berth_scrape_collector_success{collector="` + name + `"} 0`
				}
				if !strings.Contains(out, want+"\n") {
					t.Errorf("want %q in output:\n%s", want, out)
				}
			}
			for _, prefix := range tt.gone {
				for _, line := range strings.Split(out, "\n") {
					if strings.HasPrefix(line, prefix) {
						t.Errorf("metric from a broken source still published: %s", line)
						break
					}
				}
			}
			for _, prefix := range tt.still {
				if !strings.Contains(out, "\n"+prefix) {
					t.Errorf("want a %s… line in output:\n%s", prefix, out)
				}
			}
			// The healthy collectors' metrics are all still there.
			for name, metric := range map[string]string{
				"loadavg": "node_load1 0.21", "meminfo": "node_memory_MemTotal_bytes", "netdev": `node_network_receive_bytes_total{device="eth0"} 4.03773548e+08`,
				"uname": "node_uname_info{", "filesystem": `node_filesystem_size_bytes{device="/dev/vda1",fstype="ext4",mountpoint="/"} 4.096e+10`,
				"cpu": `node_cpu_seconds_total{cpu="0",mode="idle"}`, "sockstat": "node_sockstat_sockets_used 229", "netstat": "node_netstat_Tcp_CurrEstab",
				"pressure": "node_pressure_cpu_waiting_seconds_total 213.47778599999998", "boottime": "node_boot_time_seconds 1.795731459e+09",
			} {
				if failed[name] || contains(tt.noData, name) {
					continue
				}
				if !strings.Contains(out, metric) {
					t.Errorf("collector %s lost %q although its source is intact", name, metric)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func remove(rel string) func(string) error {
	return func(proc string) error { return os.Remove(filepath.Join(proc, rel)) }
}

func removeAll(rels ...string) func(string) error {
	return func(proc string) error {
		for _, rel := range rels {
			if err := os.RemoveAll(filepath.Join(proc, rel)); err != nil {
				return err
			}
		}
		return nil
	}
}

func corrupt(rel, content string) func(string) error {
	return func(proc string) error { return os.WriteFile(filepath.Join(proc, rel), []byte(content), 0o644) }
}

// TestRegister checks the flags Register defines: defaults build every
// collector, and invalid values are refused naming the flag.
func TestRegister(t *testing.T) {
	parse := func(args ...string) (map[string]exporter.Collector, error) {
		app := kingpin.New("test", "")
		reg := exporter.NewRegistry(app)
		Register(reg)
		if _, err := app.Parse(args); err != nil {
			return nil, err
		}
		return reg.Build(slog.New(slog.DiscardHandler))
	}
	collectors, err := parse("--path.procfs=testdata/proc", "--path.sysfs=testdata/sys")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range collectorNames {
		if collectors[name] == nil {
			t.Errorf("collector %s not built by default", name)
		}
	}
	collectors, err = parse("--no-collector.filesystem", "--no-collector.pressure")
	if err != nil {
		t.Fatal(err)
	}
	if collectors["filesystem"] != nil || collectors["pressure"] != nil || collectors["cpu"] == nil {
		t.Errorf("--no-collector flags not honoured: got %v", collectors)
	}

	for _, tt := range []struct{ arg, flag string }{
		{"--collector.filesystem.mount-points-exclude=^/(dev", "--collector.filesystem.mount-points-exclude"},
		{"--collector.filesystem.fs-types-exclude=(", "--collector.filesystem.fs-types-exclude"},
		{"--collector.filesystem.mount-timeout=0s", "--collector.filesystem.mount-timeout"},
		{"--collector.netdev.device-exclude=[", "--collector.netdev.device-exclude"},
		{"--collector.netstat.fields=*", "--collector.netstat.fields"},
		{"--path.procfs=testdata/nonexistent", "--path.procfs"},
		{"--path.procfs=testdata/sys", "--path.procfs"}, // exists, but no procfs
		{"--path.sysfs=testdata/nonexistent", "--path.sysfs"},
		{"--path.rootfs=testdata/nonexistent", "--path.rootfs"},
		{"--path.rootfs=testdata/proc/loadavg", "--path.rootfs"}, // not a directory
		{"--path.rootfs=", "--path.rootfs"},
	} {
		if _, err := parse(tt.arg); err == nil || !strings.Contains(err.Error(), tt.flag) {
			t.Errorf("%s: got error %v, want one naming %s", tt.arg, err, tt.flag)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestParseBootTime(t *testing.T) {
	for _, tt := range []struct {
		stat string
		want uint64
		err  bool
	}{
		{"cpu  1 2 3\nintr 5 0 1\nctxt 9\nbtime 1795731459\nprocesses 7\n", 1795731459, false},
		{"btime 17", 17, false}, // last line without newline
		{"cpu  1 2 3\nctxt 9\n", 0, true},
		{"btime soon\n", 0, true},
		{"btime 0\n", 0, true},
		{"xbtime 5\n", 0, true},
		{"", 0, true},
	} {
		got, err := parseBootTime([]byte(tt.stat))
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseBootTime(%q) = %d, %v; want %d, error %v", tt.stat, got, err, tt.want, tt.err)
		}
	}
}

package containers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const (
	fixtureID1 = "4f1c7e0b2a9d3c6e8f5a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a"
	fixtureID2 = "9a8b7c6d5e4f30211223344556677889900aabbccddeeff00112233445566778"
	// hostID is the Docker container of testdata/cgroupv2-host, files taken
	// from a real host (testdata/README.md).
	hostID = "1c8fa019edd4b9d4b2856f4932c55929c5c118c808ed5faee9a135ca6e84b039"
)

// limited is the expected reading of the fixtures' first container: 1.5
// CPUs, 512 MiB, two OOM kills. Both hierarchies hold the same figures in
// their own formats and units.
var limited = cgroupStats{
	CPUUsageSeconds:     183.422761,
	CFSPeriods:          54321,
	CFSThrottledPeriods: 1234,
	CFSThrottledSeconds: 98.765432,
	MemoryUsage:         402653184,
	MemoryWorkingSet:    402653184 - 83886080,
	MemoryRSS:           268435456,
	MemoryCache:         125829120,
	OOMKills:            2,
}

// hostStats are the figures of testdata/cgroupv2-host as its files have
// them (their source edited some, so they need not add up).
var hostStats = cgroupStats{
	CPUUsageSeconds:     26772.130245,
	CFSPeriods:          1,
	CFSThrottledPeriods: 4,
	CFSThrottledSeconds: 0.00001,
	MemoryUsage:         9125888,
	MemoryWorkingSet:    9125888 - 270336,
	MemoryRSS:           411045888,
	MemoryCache:         0,
	OOMKills:            1,
}

var unlimited = cgroupStats{
	CPUUsageSeconds:  2.5,
	MemoryUsage:      10485760,
	MemoryWorkingSet: 10485760 - 3145728,
	MemoryRSS:        6291456,
	MemoryCache:      4194304,
}

func TestCgroupFixtures(t *testing.T) {
	limitedSpec := func(shares uint64) cgroupSpec {
		return cgroupSpec{CPUQuota: 150000, CPUPeriod: 100000, CPUShares: shares, MemoryLimit: 536870912}
	}
	unlimitedSpec := func(shares uint64) cgroupSpec { return cgroupSpec{CPUPeriod: 100000, CPUShares: shares} }
	tests := []struct {
		name     string
		root     string
		pid      int
		wantPath string
		wantV2   bool
		want     cgroupStats
		wantSpec cgroupSpec
	}{
		{"v2 limited (systemd driver)", "testdata/cgroupv2", 4242, "/system.slice/docker-" + fixtureID1 + ".scope", true, limited, limitedSpec(2597)},
		{"v2 unlimited", "testdata/cgroupv2", 4343, "/system.slice/docker-" + fixtureID2 + ".scope", true, unlimited, unlimitedSpec(998)},
		{"v2 real host (systemd driver, every file of the scope)", "testdata/cgroupv2-host", 312, "/system.slice/docker-" + hostID + ".scope", true, hostStats, unlimitedSpec(2597)},
		{"v1 limited (cpu,cpuacct co-mounted)", "testdata/cgroupv1", 4242, "/docker/" + fixtureID1, false, limited, limitedSpec(1024)},
		{"v1 unlimited (controllers mounted apart)", "testdata/cgroupv1", 4343, "/docker/" + fixtureID2, false, unlimited, unlimitedSpec(1024)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc, err := locateCgroup(filepath.Join(tt.root, "proc"), filepath.Join(tt.root, "sys/fs/cgroup"), tt.pid)
			if err != nil {
				t.Fatalf("locateCgroup: %v", err)
			}
			if loc.Path != tt.wantPath || loc.V2 != tt.wantV2 {
				t.Fatalf("located %q (v2=%v), want %q (v2=%v)", loc.Path, loc.V2, tt.wantPath, tt.wantV2)
			}
			r := newFileReader()
			files := newCgroupFiles(loc)
			defer files.close()
			got, err := readCgroup(r, files)
			if err != nil {
				t.Fatalf("readCgroup: %v", err)
			}
			if !statsEqual(got, tt.want) {
				t.Errorf("stats\n got %+v\nwant %+v", got, tt.want)
			}
			// Again through the files now held open.
			if again, err := readCgroup(r, files); err != nil || !statsEqual(again, tt.want) {
				t.Errorf("second read through open files: %+v, %v", again, err)
			}
			spec, err := readCgroupSpec(r, loc)
			if err != nil {
				t.Fatalf("readCgroupSpec: %v", err)
			}
			if spec != tt.wantSpec {
				t.Errorf("spec %+v, want %+v", spec, tt.wantSpec)
			}
		})
	}
}

// statsEqual compares with a tolerance for float seconds converted from
// integer units.
func statsEqual(a, b cgroupStats) bool {
	near := func(x, y float64) bool { d := x - y; return d < 1e-9 && d > -1e-9 }
	if !near(a.CPUUsageSeconds, b.CPUUsageSeconds) || !near(a.CFSThrottledSeconds, b.CFSThrottledSeconds) {
		return false
	}
	a.CPUUsageSeconds, a.CFSThrottledSeconds = 0, 0
	b.CPUUsageSeconds, b.CFSThrottledSeconds = 0, 0
	return reflect.DeepEqual(a, b)
}

func TestLocateCgroupErrors(t *testing.T) {
	if _, err := locateCgroup("testdata/cgroupv2/proc", "testdata/cgroupv2/sys/fs/cgroup", 999999); err == nil || !strings.Contains(err.Error(), "999999/cgroup") {
		t.Errorf("missing process: err = %v, want one naming 999999/cgroup", err)
	}
	// A process whose cgroup directory is gone (container stopped).
	loc := cgroupLocation{V2: true, Unified: "testdata/cgroupv2/sys/fs/cgroup/system.slice/gone.scope"}
	if _, err := readCgroup(newFileReader(), newCgroupFiles(loc)); err == nil {
		t.Error("reading a vanished v2 cgroup succeeded")
	}
	loc = cgroupLocation{CPU: "testdata/none", CPUAcct: "testdata/none", Memory: "testdata/none"}
	if _, err := readCgroup(newFileReader(), newCgroupFiles(loc)); err == nil {
		t.Error("reading a vanished v1 cgroup succeeded")
	}
}

func TestLocateCgroupForeignNamespace(t *testing.T) {
	procfs := t.TempDir()
	if err := os.MkdirAll(filepath.Join(procfs, "77"), 0o755); err != nil {
		t.Fatal(err)
	}
	// What a process in the host's root cgroup namespace looks like from an
	// exporter container started without --cgroupns=host.
	if err := os.WriteFile(filepath.Join(procfs, "77", "cgroup"), []byte("0::/../../system.slice/docker-abc.scope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := locateCgroup(procfs, "testdata/cgroupv2/sys/fs/cgroup", 77)
	if !errors.Is(err, errForeignCgroupNamespace) || !strings.Contains(err.Error(), "--cgroupns=host") {
		t.Errorf("err = %v, want errForeignCgroupNamespace naming --cgroupns=host", err)
	}
}

func TestParseProcCgroup(t *testing.T) {
	v1, unified, err := parseProcCgroup([]byte("3:cpu,cpuacct:/docker/abc\n10:memory:/docker/abc\n1:name=systemd:/docker/abc\n0::/\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v1["cpu"].path != "/docker/abc" || v1["cpuacct"].controllers != "cpu,cpuacct" || v1["memory"].path != "/docker/abc" || unified != "/" {
		t.Errorf("got v1=%+v unified=%q", v1, unified)
	}
	if _, _, err := parseProcCgroup([]byte("garbage\n")); err == nil {
		t.Error("malformed line accepted")
	}
}

func TestParseNetDev(t *testing.T) {
	got, err := readNetDev(newFileReader(), netDevPath("testdata/cgroupv2/proc", 4242))
	if err != nil {
		t.Fatal(err)
	}
	want := []interfaceStats{{
		Name: "eth0", RxBytes: 52341876, RxPackets: 40213, RxErrors: 1, RxDrops: 7,
		TxBytes: 8123456, TxPackets: 30111, TxErrors: 2, TxDrops: 3,
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v (lo skipped)", got, want)
	}
	if _, err := parseNetDev([]byte("h1\nh2\n  eth0: 1 2 3\n"), "x"); err == nil {
		t.Error("short line accepted")
	}
}

func TestFileReader(t *testing.T) {
	dir := t.TempDir()
	// Larger than the initial buffer: memory.stat grows with kernel versions.
	var big strings.Builder
	for i := 0; big.Len() < 20000; i++ {
		fmt.Fprintf(&big, "key_%d %d\n", i, i)
	}
	big.WriteString("inactive_file 4242\n")
	path := filepath.Join(dir, "memory.stat")
	if err := os.WriteFile(path, []byte(big.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &fileReader{buf: make([]byte, 16)}
	var inactive, key7 uint64
	if err := r.keyValues(path, field{"inactive_file", &inactive}, field{"key_7", &key7}); err != nil {
		t.Fatal(err)
	}
	if inactive != 4242 || key7 != 7 {
		t.Errorf("inactive_file=%d key_7=%d, want 4242 and 7", inactive, key7)
	}
	if _, err := r.uint(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("nr_periods x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var v uint64
	if err := r.keyValues(bad, field{"nr_periods", &v}); err == nil || !strings.Contains(err.Error(), "nr_periods") {
		t.Errorf("malformed value: err = %v, want one naming the key", err)
	}
}

// TestKeptFile: a file held open is re-read from its start every time,
// showing the current content, whatever its size.
func TestKeptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpuacct.usage")
	r := &fileReader{buf: make([]byte, 16)}
	f := newKeptFile(path)
	defer f.close()
	if _, err := r.readKept(&f); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	for _, content := range []string{"123\n", strings.Repeat("9", 10000) + "\n", "7\n"} {
		// Rewritten in place (same inode), as the kernel regenerates a
		// cgroup file.
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := r.readKept(&f)
		if err != nil || string(got) != content {
			t.Fatalf("read %d bytes (%v), want %d bytes of the current content", len(got), err, len(content))
		}
		if !f.open {
			t.Fatal("file not held open after a read")
		}
	}
}

// TestReadNetDevPastOnePage: /proc files that are generated line by line
// answer short reads before their end, so net/dev is read until EOF. A
// real procfs file bigger than a page must come back whole.
func TestReadNetDevPastOnePage(t *testing.T) {
	path := "/proc/self/smaps" // line by line, like net/dev, and larger than a page
	want, err := os.ReadFile(path)
	if err != nil || len(want) <= 4096 {
		t.Skipf("%s is not larger than a page here (%d bytes, %v)", path, len(want), err)
	}
	got, err := newFileReader().read(path)
	if err != nil {
		t.Fatal(err)
	}
	// The mappings of this process may change between the two reads by a line
	// or two (allocations), never by half.
	if len(got) < len(want)/2 || len(got) <= 4096 {
		t.Errorf("read %d bytes of %s, os.ReadFile %d", len(got), path, len(want))
	}
}

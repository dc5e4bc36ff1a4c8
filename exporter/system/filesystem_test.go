package system

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/exporter"
	"github.com/shirou/gopsutil/v4/disk"
)

// hangingStatfs answers like fixtureStatfs but blocks on /mnt/nfs until
// released, like statfs on a dead hard-mounted NFS server.
type hangingStatfs struct {
	release chan struct{}
	calls   atomic.Int32 // statfs calls on the hung mount
	once    sync.Once
}

func (h *hangingStatfs) usage(ctx context.Context, path string) (*disk.UsageStat, error) {
	if path == "/mnt/nfs" {
		h.calls.Add(1)
		<-h.release
		return statfsResult{Bsize: 4096, Blocks: 100, Bfree: 50, Bavail: 50, Files: 10, Ffree: 5}.usage(path), nil
	}
	return fixtureStatfs.usage(ctx, path)
}

func (h *hangingStatfs) unblock() { h.once.Do(func() { close(h.release) }) }

// TestFilesystemHungMount checks node_exporter's stuck-mount behaviour,
// improved so that even the first hang does not stall the scrape: the hung
// mount is reported with device_error 1 while the others are reported in
// full; later scrapes do not pile another statfs onto it; once the call
// returns, the mount is stat'ed again. No timing is asserted: a regression
// shows up as a test that never returns.
func TestFilesystemHungMount(t *testing.T) {
	h := &hangingStatfs{release: make(chan struct{})}
	t.Cleanup(h.unblock)
	cfg := fixtureConfig("testdata/proc")
	cfg.usage = h.usage
	cfg.filesystem.MountTimeout = time.Second
	fs, err := cfg.newCollector("filesystem", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	collectors := map[string]exporter.Collector{"filesystem": fs}
	const (
		nfsError  = `node_filesystem_device_error{device="nfs.example.org:/export",fstype="nfs4",mountpoint="/mnt/nfs"} 1`
		nfsOK     = `node_filesystem_device_error{device="nfs.example.org:/export",fstype="nfs4",mountpoint="/mnt/nfs"} 0`
		nfsSize   = `node_filesystem_size_bytes{device="nfs.example.org:/export",fstype="nfs4",mountpoint="/mnt/nfs"} 409600`
		rootSize  = `node_filesystem_size_bytes{device="/dev/vda1",fstype="ext4",mountpoint="/"} 4.096e+10`
		succeeded = `berth_scrape_collector_success{collector="filesystem"} 1`
	)

	for scrape := 1; scrape <= 2; scrape++ {
		out := scrapeText(t, context.Background(), collectors)
		for _, want := range []string{nfsError, rootSize, succeeded} {
			if !strings.Contains(out, want+"\n") {
				t.Fatalf("scrape %d: want %q in:\n%s", scrape, want, out)
			}
		}
		if strings.Contains(out, nfsSize) {
			t.Fatalf("scrape %d: hung mount reported a size", scrape)
		}
	}
	if n := h.calls.Load(); n != 1 {
		t.Fatalf("statfs called %d times on the hung mount, want 1 (later scrapes must skip it while it hangs)", n)
	}

	h.unblock()
	// The released call finishes asynchronously; scrape until the mount is
	// back (bounded by the test timeout, not by a threshold here).
	for {
		out := scrapeText(t, context.Background(), collectors)
		if strings.Contains(out, nfsOK+"\n") {
			if !strings.Contains(out, nfsSize+"\n") {
				t.Fatalf("recovered mount lacks its size:\n%s", out)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFilesystemHungMountScrapeDeadline: with a mount timeout longer than
// the scrape's own deadline, the collector still answers before the
// deadline, so the healthy mounts are not lost with the hung one.
func TestFilesystemHungMountScrapeDeadline(t *testing.T) {
	h := &hangingStatfs{release: make(chan struct{})}
	t.Cleanup(h.unblock)
	cfg := fixtureConfig("testdata/proc")
	cfg.usage = h.usage
	cfg.filesystem.MountTimeout = time.Hour
	fs, err := cfg.newCollector("filesystem", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out := scrapeText(t, ctx, map[string]exporter.Collector{"filesystem": fs})
	for _, want := range []string{
		`node_filesystem_device_error{device="nfs.example.org:/export",fstype="nfs4",mountpoint="/mnt/nfs"} 1`,
		`node_filesystem_size_bytes{device="/dev/vda1",fstype="ext4",mountpoint="/"} 4.096e+10`,
		`berth_scrape_collector_success{collector="filesystem"} 1`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Fatalf("want %q in:\n%s", want, out)
		}
	}
}

func TestStripRoot(t *testing.T) {
	for _, tt := range []struct{ root, in, want string }{
		{"/", "/data", "/data"},
		{"/host", "/host", "/"},
		{"/host", "/host/data", "/data"},
		{"/host/", "/host/data", "/data"},
		{"/host", "/hostile", "/hostile"},
		{"/host", "/data", "/data"},
	} {
		if got := (Paths{Root: tt.root}).stripRoot(tt.in); got != tt.want {
			t.Errorf("root %q: stripRoot(%q) = %q, want %q", tt.root, tt.in, got, tt.want)
		}
	}
}

// TestFilesystemRootfs: in a container with the host's / at --path.rootfs,
// statfs goes to the path below rootfs while labels keep the host's path.
func TestFilesystemRootfs(t *testing.T) {
	var (
		mu    sync.Mutex // statfs runs in one goroutine per mount
		asked []string
	)
	cfg := fixtureConfig("testdata/proc")
	cfg.paths.Root = "/host"
	cfg.usage = func(ctx context.Context, path string) (*disk.UsageStat, error) {
		mu.Lock()
		asked = append(asked, path)
		mu.Unlock()
		return fixtureStatfs.usage(ctx, strings.TrimPrefix(path, "/host"))
	}
	fs, err := cfg.newCollector("filesystem", discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	out := scrapeText(t, context.Background(), map[string]exporter.Collector{"filesystem": fs})
	if !strings.Contains(out, `node_filesystem_size_bytes{device="/dev/vdb",fstype="xfs",mountpoint="/data"} 2.147483648e+11`+"\n") {
		t.Errorf("labels must carry the host path:\n%s", out)
	}
	mu.Lock()
	defer mu.Unlock()
	found := false
	for _, p := range asked {
		if p == "/host/data" {
			found = true
		}
	}
	if !found {
		t.Errorf("statfs paths %v, want /host/data among them", asked)
	}
}

func TestMatchCacheKeepsOnlyLatestScrape(t *testing.T) {
	calls := 0
	m := &matchCache[string]{matches: func(s string) bool { calls++; return strings.HasPrefix(s, "/var/lib/docker/") }, prev: map[string]bool{}}
	scrape := func(names ...string) []bool {
		m.begin()
		defer m.end()
		var out []bool
		for _, n := range names {
			out = append(out, m.match(n))
		}
		return out
	}
	if got := scrape("/", "/var/lib/docker/a"); got[0] || !got[1] {
		t.Fatalf("verdicts %v", got)
	}
	scrape("/", "/var/lib/docker/b")
	if calls != 3 {
		t.Errorf("regexp evaluated %d times, want 3 (\"/\" cached)", calls)
	}
	if _, kept := m.prev["/var/lib/docker/a"]; kept || len(m.prev) != 2 {
		t.Errorf("cache holds %v, want only the latest scrape's names", m.prev)
	}
}

package enginetest

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
)

// Image is the name of the busybox image every test engine holds. Its
// rootfs has /bin/busybox and applet links (sh, sleep, yes, cat, dd, head,
// tr, true, echo): enough for busy, idle, failing and memory-hungry
// workloads.
const Image = "localhost/berth-test:1"

// busyboxLinks are the applets the image exposes under /bin.
var busyboxLinks = []string{"sh", "sleep", "yes", "cat", "dd", "head", "tr", "true", "echo"}

var rootfs struct {
	once sync.Once
	tar  []byte
	err  error
}

// ImageTar is the image's root filesystem as a tar archive, for an engine's
// offline import. It is built once per test process. A missing static
// busybox marks the test unavailable.
func ImageTar(t testing.TB) []byte {
	t.Helper()
	busybox := lookBusybox(t)
	rootfs.once.Do(func() { rootfs.tar, rootfs.err = buildRootfs(busybox) })
	if rootfs.err != nil {
		t.Fatalf("enginetest: building image rootfs: %v", rootfs.err)
	}
	return rootfs.tar
}

// lookBusybox finds a statically linked busybox: the image has no shared
// libraries, so Debian's dynamically linked `busybox` package will not do.
func lookBusybox(t testing.TB) string {
	t.Helper()
	path := ""
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if _, err := os.Stat(p); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		path = testenv.LookPath(t, "busybox", "busybox-static")
	}
	f, err := elf.Open(path)
	if err != nil {
		testenv.Unavailable(t, "reading %s: %v (Debian package busybox-static)", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			testenv.Unavailable(t, "%s is dynamically linked; the test image needs busybox-static", path)
		}
	}
	return path
}

// buildRootfs makes the image's root filesystem as a tar archive in memory:
// /bin/busybox plus applet links.
func buildRootfs(busybox string) ([]byte, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("reading busybox %s: %w", busybox, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	headers := []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now},
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: now},
		{Name: "proc/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now},
		{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now},
		{Name: "sys/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now},
	}
	for _, h := range headers {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin)), ModTime: now}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	for _, link := range busyboxLinks {
		if err := tw.WriteHeader(&tar.Header{Name: "bin/" + link, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777, ModTime: now}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

package system

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/shirou/gopsutil/v4/disk"
	"golang.org/x/sys/unix"
)

// inMountNamespace is set in the copy of the test binary that
// TestIntegrationMountTableFollowsMounts runs in a private mount namespace.
const inMountNamespace = "BERTH_TEST_PRIVATE_MOUNT_NAMESPACE"

// TestIntegrationMountTableFollowsMounts checks that the cached mount table
// is parsed again exactly when a mount or unmount changed it. It mounts
// a tmpfs, so it runs itself again in a private mount namespace (unshare),
// where the mount is invisible to the rest of the machine and other
// processes' mounts cannot change the table meanwhile.
func TestIntegrationMountTableFollowsMounts(t *testing.T) {
	if os.Getenv(inMountNamespace) == "1" {
		checkMountTableFollowsMounts(t)
		return
	}
	unshare := testenv.LookPath(t, "unshare", "util-linux")
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "mounting needs root")
	}
	cmd := exec.Command(unshare, "--mount", "--propagation", "private",
		os.Args[0], "-test.run=^TestIntegrationMountTableFollowsMounts$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), inMountNamespace+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestIntegrationMountTableFollowsMounts") {
		t.Fatalf("in a private mount namespace: %v\n%s", err, out)
	}
}

func checkMountTableFollowsMounts(t *testing.T) {
	// procfs/1 → /proc/self: gopsutil and the cache read this process's
	// mount table (PID 1's is the host's, in another namespace).
	proc := filepath.Join(t.TempDir(), "proc")
	if err := os.Mkdir(proc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc/self", filepath.Join(proc, "1")); err != nil {
		t.Fatal(err)
	}
	paths := Paths{Proc: proc, Sys: "/sys", Root: "/"}
	ctx := withEnv(context.Background(), paths.gopsutilEnv())
	table := &mountTable{paths: paths}
	target := t.TempDir()
	has := func(parts []disk.PartitionStat) bool {
		return slices.ContainsFunc(parts, func(p disk.PartitionStat) bool { return p.Mountpoint == target })
	}
	list := func() []disk.PartitionStat {
		t.Helper()
		parts, err := table.list(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return parts
	}

	first := list()
	if has(first) {
		t.Fatalf("%s mounted before the test mounted it", target)
	}
	if again := list(); &again[0] != &first[0] {
		t.Error("mount table parsed again although nothing was mounted")
	}
	// Repeated: a signal-based cache (POLLPRI) missed about one unmount
	// in 200 here.
	for i := range 50 {
		if err := unix.Mount("berth-test", target, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatalf("mounting tmpfs: %v", err)
		}
		if !has(list()) {
			t.Fatalf("round %d: new mount %s not listed", i, target)
		}
		if err := unix.Unmount(target, 0); err != nil {
			t.Fatalf("unmounting: %v", err)
		}
		if has(list()) {
			t.Fatalf("round %d: unmounted %s still listed", i, target)
		}
	}
}

// TestMountTableFixtureChange: a changed mountinfo is parsed again, an
// unchanged one is not.
func TestMountTableFixtureChange(t *testing.T) {
	proc := copyTree(t, "testdata/proc")
	paths := Paths{Proc: proc, Sys: "testdata/sys", Root: "/"}
	ctx := withEnv(context.Background(), paths.gopsutilEnv())
	table := &mountTable{paths: paths}
	before, err := table.list(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := table.list(ctx); err != nil || &again[0] != &before[0] {
		t.Errorf("unchanged table parsed again (err %v)", err)
	}
	line := "40 25 254:48 / /extra rw,relatime shared:40 - ext4 /dev/vdd rw\n"
	f, err := os.OpenFile(filepath.Join(proc, "1", "mountinfo"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(line); err != nil {
		t.Fatal(err)
	}
	f.Close()
	after, err := table.list(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before)+1 || after[len(after)-1].Mountpoint != "/extra" {
		t.Errorf("table not re-read: %d mounts before, %d after", len(before), len(after))
	}
}

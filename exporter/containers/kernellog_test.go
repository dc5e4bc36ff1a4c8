package containers

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
)

const (
	podmanID = "44772fd7856d1b9908aa2cf3fbf8a46ea8551fc28694fd9dbd97a0d2d1a285b0"
	dockerID = "e3f4e17db6f9b4832e425b03d38d30ba9aa65ae9414d769e6bc801d5b41b8fa7"
)

func TestOOMKillsInKmsg(t *testing.T) {
	tests := []struct {
		name, records string
		want          []string
	}{
		{
			name:    "podman, cgroup v1 (kernel 6.18, recorded on the test machine)",
			records: "6,61016,1683442311,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=libpod-" + podmanID + ",mems_allowed=0,oom_memcg=/libpod_parent/libpod-" + podmanID + ",task_memcg=/libpod_parent/libpod-" + podmanID + ",task=sh,pid=20705,uid=0\n",
			want:    []string{podmanID},
		},
		{
			name:    "docker, systemd driver on cgroup v2, several cpus allowed",
			records: "6,100,200,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0-1,oom_memcg=/system.slice/docker-" + dockerID + ".scope,task_memcg=/system.slice/docker-" + dockerID + ".scope,task=node,pid=9,uid=1000\n",
			want:    []string{dockerID},
		},
		{
			name:    "podman with crun on cgroup v2: a sub-cgroup of the container's",
			records: "6,1,2,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/machine.slice/libpod-" + podmanID + ".scope,task_memcg=/machine.slice/libpod-" + podmanID + ".scope/container,task=sh,pid=9,uid=0\n",
			want:    []string{podmanID},
		},
		{
			name:    "kernels before 4.19",
			records: "3,5,6,-;Task in /docker/" + dockerID + " killed as a result of limit of /docker/" + dockerID + "\n",
			want:    []string{dockerID},
		},
		{
			name: "the rest of an OOM report, a kill outside containers, continuation lines",
			records: "4,60916,1683442071,-;head invoked oom-killer: gfp_mask=0x500cc2(GFP_HIGHUSER|__GFP_ACCOUNT), order=0, oom_score_adj=0\n" +
				"3,61017,1683442322,-;Memory cgroup out of memory: Killed process 20705 (sh) total-vm:20704kB, anon-rss:15488kB\n" +
				"6,7,8,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/user.slice/user-1000.slice/session-3.scope,task=java,pid=77,uid=1000\n" +
				" SUBSYSTEM=memory\n",
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := oomKillsInKmsg([]byte(tt.records)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestKernelLogRead: records are read one at a time, as /dev/kmsg hands
// them out, records lost to an overrun are skipped, and each kill's
// container is reported.
func TestKernelLogRead(t *testing.T) {
	records := []string{
		"6,1,1,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/docker/" + dockerID + ",task_memcg=/docker/" + dockerID + ",task=sh,pid=1,uid=0\n",
		"6,2,2,-;eth0: link up\n",
		"6,4,4,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/libpod_parent/libpod-" + podmanID + ",task_memcg=/libpod_parent/libpod-" + podmanID + ",task=sh,pid=2,uid=0\n",
	}
	r := &recordReader{records: records, overrunAfter: 2}
	var mu sync.Mutex
	var got []string
	k := &kernelLog{path: "kmsg", logger: testLogger(t), kill: func(id string) {
		mu.Lock()
		got = append(got, id)
		mu.Unlock()
	}}
	if err := k.read(r); !errors.Is(err, io.EOF) {
		t.Fatalf("read ended with %v, want the reader's EOF", err)
	}
	if want := []string{dockerID, podmanID}; !reflect.DeepEqual(got, want) {
		t.Errorf("kills reported for %q, want %q", got, want)
	}
}

// recordReader hands out one record per Read, failing with EPIPE (records
// overwritten) once after overrunAfter records.
type recordReader struct {
	records      []string
	overrunAfter int
	n            int
	overran      bool
}

func (r *recordReader) Read(p []byte) (int, error) {
	if r.n == r.overrunAfter && !r.overran {
		r.overran = true
		return 0, &os.PathError{Op: "read", Path: "kmsg", Err: syscall.EPIPE}
	}
	if r.n == len(r.records) {
		return 0, io.EOF
	}
	r.n++
	return copy(p, r.records[r.n-1]), nil
}

// TestKernelLogUnavailable: a kernel log that cannot be opened is said
// in the log (the collector goes on), and the up gauge says 0.
func TestKernelLogUnavailable(t *testing.T) {
	logs := &testenv.SyncBuffer{}
	c, err := New(Config{
		DockerHost: serveUnix(t, &fakeEngine{containers: fixtureContainers()}), LabelMap: DefaultLabelMap,
		ProcFS: "testdata/cgroupv1/proc", CgroupFS: "testdata/cgroupv1/sys/fs/cgroup",
		KernelLog: filepath.Join(t.TempDir(), "no-kmsg"),
	}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	text, err := gather(t, c)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if v := parseScrape(t, text).value(t, "berth_kernel_log_up", nil); v != 0 {
		t.Errorf("berth_kernel_log_up = %v, want 0", v)
	}
	// The reader fails in the background: wait for its word (bounded only
	// so that a broken build cannot hang).
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "cannot follow the kernel log") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning about the kernel log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKmsgFixtures: whole OOM reports recorded from the test machine's
// kernel (testdata/kmsg, 80-odd records each: stack, memory state, task
// list) name exactly one killed container.
func TestKmsgFixtures(t *testing.T) {
	for file, want := range map[string]string{
		"docker-oom-report.txt": "e1d272dbcbd2eb882b059b55e928ecf811dcea0bfbe53fc96537be448527541f",
		"podman-oom-report.txt": "bf3450029041136aaa599468b2784c72e1925eb0221a229ddb409149048dd19d",
	} {
		data, err := os.ReadFile(filepath.Join("testdata", "kmsg", file))
		if err != nil {
			t.Fatal(err)
		}
		if got := oomKillsInKmsg(data); !reflect.DeepEqual(got, []string{want}) {
			t.Errorf("%s: kills of %q, want only %s", file, got, want)
		}
	}
}

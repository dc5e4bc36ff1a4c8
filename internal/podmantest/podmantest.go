// Package podmantest runs a real, isolated Docker-compatible engine (Podman
// with its Docker API service) for integration tests, set up as described in
// shared/notes/podman.md: runc, cgroupfs, no container network, vfs storage,
// and its own configuration and storage in a temporary directory so that a
// test never touches the machine's containers or configuration.
package podmantest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
)

// Image is the name of the busybox image every engine holds. Its rootfs has
// /bin/busybox and applet links (sh, sleep, yes, cat, dd, head, tr, true,
// echo): enough for busy, idle, failing and memory-hungry workloads.
const Image = "localhost/berth-test:1"

// busyboxLinks are the applets the image exposes under /bin.
var busyboxLinks = []string{"sh", "sleep", "yes", "cat", "dd", "head", "tr", "true", "echo"}

// Engine is a running Podman API service with its own storage.
type Engine struct {
	podman  string
	dir     string
	env     []string
	socket  string
	service *exec.Cmd
	exited  chan struct{}
	output  *testenv.SyncBuffer
}

var (
	rootfsOnce sync.Once
	rootfsTar  []byte
	rootfsErr  error
)

// Start sets up an isolated engine, imports the test image and starts
// `podman system service` on a unix socket. Everything (containers, service,
// storage, leftover conmon processes and mounts) is removed when the test
// ends. The image's rootfs archive is built once per test process; importing
// it into each engine's own storage takes about 0.15 s. Start takes about a
// second in all. A missing podman, runc or static busybox, or not running as
// root, marks the test unavailable (skip, or failure under CI).
func Start(t testing.TB) *Engine {
	t.Helper()
	podman := testenv.LookPath(t, "podman", "podman")
	runc := testenv.LookPath(t, "runc", "runc")
	busybox := lookBusybox(t)
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "podman tests need root (rootful podman with cgroupfs, as in notes/podman.md)")
	}

	// A short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "berth-podman-")
	if err != nil {
		t.Fatalf("podmantest: creating temp dir: %v", err)
	}
	e := &Engine{
		podman: podman,
		dir:    dir,
		socket: filepath.Join(dir, "podman.sock"),
		output: &testenv.SyncBuffer{},
	}
	t.Cleanup(func() { e.cleanup(t) })

	conf := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
netns = "none"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = %q
[engine.runtimes]
runc = [%q]
`, filepath.Join(dir, "tmp"), runc)
	storage := fmt.Sprintf(`[storage]
driver = "vfs"
runroot = %q
graphroot = %q
`, filepath.Join(dir, "run"), filepath.Join(dir, "root"))
	confPath := filepath.Join(dir, "containers.conf")
	storagePath := filepath.Join(dir, "storage.conf")
	for path, content := range map[string]string{confPath: conf, storagePath: storage} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatalf("podmantest: writing %s: %v", path, err)
		}
	}
	e.env = append(os.Environ(),
		"CONTAINERS_CONF="+confPath,
		"CONTAINERS_STORAGE_CONF="+storagePath,
		// Keep the user's registries and policy out of the picture.
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf"),
	)
	if err := os.WriteFile(filepath.Join(dir, "registries.conf"), nil, 0o644); err != nil {
		t.Fatalf("podmantest: writing registries.conf: %v", err)
	}

	rootfsOnce.Do(func() { rootfsTar, rootfsErr = buildRootfs(busybox) })
	if rootfsErr != nil {
		t.Fatalf("podmantest: building image rootfs: %v", rootfsErr)
	}
	cmd := e.command("import", "-", Image)
	cmd.Stdin = bytes.NewReader(rootfsTar)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("podmantest: podman import: %v\n%s", err, out)
	}

	e.startService(t)
	return e
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
// /bin/busybox plus applet links. busybox-static is needed because the
// image has no libraries.
func buildRootfs(busybox string) ([]byte, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("reading busybox: %w", err)
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

func (e *Engine) command(args ...string) *exec.Cmd {
	cmd := exec.Command(e.podman, args...)
	cmd.Env = e.env
	// conmon inherits the working directory and writes files there (an
	// "oom" marker when a container process is OOM-killed): keep them in
	// the engine's directory, not in the test's package.
	cmd.Dir = e.dir
	return cmd
}

func (e *Engine) startService(t testing.TB) {
	t.Helper()
	cmd := e.command("system", "service", "--time=0", "unix://"+e.socket)
	cmd.Stdout = e.output
	cmd.Stderr = e.output
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("podmantest: starting podman system service: %v", err)
	}
	e.service = cmd
	e.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(e.exited) }()

	client := e.HTTPClient()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://podman/_ping", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		cancel()
		if err == nil && resp.StatusCode == http.StatusOK {
			return
		}
		select {
		case <-e.exited:
			t.Fatalf("podmantest: podman system service exited:\n%s", e.output.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("podmantest: podman API on %s did not answer within 30s (last error: %v)\n%s", e.socket, err, e.output.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Socket is the path of the engine's Docker-compatible API socket.
func (e *Engine) Socket() string { return e.socket }

// Host is the socket as a Docker host URL (unix:///…).
func (e *Engine) Host() string { return "unix://" + e.socket }

// ServicePID is the process id of `podman system service`, for measuring
// the engine's own CPU time.
func (e *Engine) ServicePID() int { return e.service.Process.Pid }

// Dir is the engine's private directory (configuration, storage, socket).
func (e *Engine) Dir() string { return e.dir }

// HTTPClient returns a client that talks to the engine's socket whatever the
// URL's host is.
func (e *Engine) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", e.socket)
		},
	}}
}

// Podman runs a podman command against this engine's storage and returns
// its trimmed standard output; a failure fails the test.
func (e *Engine) Podman(t testing.TB, args ...string) string {
	t.Helper()
	out, err := e.TryPodman(args...)
	if err != nil {
		t.Fatalf("podmantest: %v", err)
	}
	return out
}

// TryPodman is Podman returning the error instead of failing the test, for
// tests that expect a command to fail.
func (e *Engine) TryPodman(args ...string) (string, error) {
	cmd := e.command(args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("podman %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Run starts a detached container (`podman run -d ARGS…`) and returns its
// full id. ARGS are podman run's options, then the image and command.
func (e *Engine) Run(t testing.TB, args ...string) string {
	t.Helper()
	out := e.Podman(t, append([]string{"run", "-d"}, args...)...)
	lines := strings.Split(out, "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Remove force-removes a container at once (no stop grace period).
func (e *Engine) Remove(t testing.TB, name string) {
	t.Helper()
	e.Podman(t, "rm", "-f", "-t", "0", name)
}

// Inspect returns one field of `podman inspect` through a Go template,
// e.g. Inspect(t, "web", "{{.State.Pid}}").
func (e *Engine) Inspect(t testing.TB, name, format string) string {
	t.Helper()
	return e.Podman(t, "inspect", "--format", format, name)
}

// StopService stops the API service (the containers keep running), for tests
// of what happens when the engine goes away. Cleanup copes with it.
func (e *Engine) StopService(t testing.TB) {
	t.Helper()
	e.stopService()
}

func (e *Engine) stopService() {
	if e.service == nil || e.service.Process == nil {
		return
	}
	select {
	case <-e.exited:
		return
	default:
	}
	pgid := -e.service.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-e.exited
	}
}

func (e *Engine) cleanup(t testing.TB) {
	if e.service != nil {
		if _, err := e.TryPodman("rm", "-a", "-f", "-t", "0"); err != nil {
			t.Logf("podmantest: removing containers: %v", err)
		}
	}
	e.stopService()
	if t.Failed() && e.output.String() != "" {
		t.Logf("podman system service output:\n%s", e.output.String())
	}
	// conmon and the `podman container cleanup` it spawns when a container
	// exits outlive `podman rm` for a moment and write into the storage.
	e.waitForHelpers(t)
	// Podman mounts a tmpfs (shm) per container inside the storage; a
	// container that could not be removed leaves it mounted.
	for _, m := range mountsUnder(e.dir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			t.Logf("podmantest: unmounting %s: %v", m, err)
		}
	}
	if err := os.RemoveAll(e.dir); err != nil {
		t.Logf("podmantest: removing %s: %v", e.dir, err)
	}
}

// waitForHelpers waits for the processes this engine started (they carry
// its CONTAINERS_CONF in their environment) to exit, killing stragglers.
func (e *Engine) waitForHelpers(t testing.TB) {
	marker := []byte("CONTAINERS_CONF=" + filepath.Join(e.dir, "containers.conf") + "\x00")
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := processesWithEnv(marker)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				t.Logf("podmantest: killing leftover engine process %d", pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(100 * time.Millisecond)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processesWithEnv lists the processes whose environment holds marker.
func processesWithEnv(marker []byte) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", entry.Name(), "environ"))
		if err != nil {
			continue
		}
		if bytes.Contains(append(env, 0), marker) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mountsUnder lists mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var mounts []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	for i, j := 0, len(mounts)-1; i < j; i, j = i+1, j-1 {
		mounts[i], mounts[j] = mounts[j], mounts[i]
	}
	return mounts
}

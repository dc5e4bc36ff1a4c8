// Package podmantest runs a real, isolated Docker-compatible engine (Podman
// with its Docker API service) for integration tests: runc, cgroupfs, no
// container network, vfs storage, and its own configuration and storage in a
// temporary directory so that a test never touches the machine's containers
// or configuration. Its Engine implements enginetest.Engine.
package podmantest

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/enginetest"
	"github.com/berth-dev/berth/internal/testenv"
)

// Image is the name of the busybox image every engine holds (see
// enginetest.Image).
const Image = enginetest.Image

// Engine is a running Podman API service with its own storage.
type Engine struct {
	// Client does the container operations of enginetest.Engine through
	// Podman's Docker-compatible API.
	*enginetest.Client
	podman  string
	dir     string
	env     []string
	socket  string
	service *exec.Cmd
	exited  chan struct{}
	output  *testenv.SyncBuffer
}

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
	rootfs := enginetest.ImageTar(t)
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "podman tests need root (rootful podman with the cgroupfs manager)")
	}

	// A short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "berth-podman-")
	if err != nil {
		t.Fatalf("podmantest: creating temp dir: %v", err)
	}
	e := &Engine{
		Client: enginetest.NewClient(filepath.Join(dir, "podman.sock")),
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

	cmd := e.command("import", "-", Image)
	cmd.Stdin = bytes.NewReader(rootfs)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("podmantest: podman import: %v\n%s", err, out)
	}

	e.startService(t)
	return e
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

	e.WaitForAPI(t, "podman system service on "+e.socket, 30*time.Second, e.exited, e.output.String)
}

// Socket is the path of the engine's Docker-compatible API socket.
func (e *Engine) Socket() string { return e.socket }

// Host is the socket as a Docker host URL (unix:///…).
func (e *Engine) Host() string { return "unix://" + e.socket }

// Kind is "podman".
func (e *Engine) Kind() string { return "podman" }

// ServicePIDs is the process of `podman system service`, for measuring the
// engine's own CPU time.
func (e *Engine) ServicePIDs() []int { return []int{e.service.Process.Pid} }

// Dir is the engine's private directory (configuration, storage, socket).
func (e *Engine) Dir() string { return e.dir }

// HTTPClient returns a client that talks to the engine's socket whatever the
// URL's host is.
func (e *Engine) HTTPClient() *http.Client { return e.HTTP() }

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
	// They carry this engine's CONTAINERS_CONF in their environment.
	enginetest.KillLeftovers(t, "environ", e.helperMarker())
	// Podman mounts a tmpfs (shm) per container inside the storage.
	enginetest.RemoveDir(t, e.dir)
}

// helperMarker is in the environment of every process this engine starts.
func (e *Engine) helperMarker() []byte {
	return []byte("CONTAINERS_CONF=" + filepath.Join(e.dir, "containers.conf") + "\x00")
}

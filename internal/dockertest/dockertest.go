// Package dockertest runs a real, isolated Docker Engine (dockerd) for
// integration tests: its own data root, exec root, pidfile, configuration
// and API socket in a temporary directory, vfs storage, the cgroupfs driver
// and no networking of its own (no bridge, iptables or forwarding), so that
// a test never touches the machine's Docker. Its Engine implements
// enginetest.Engine; the image is imported offline through the API.
package dockertest

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/enginetest"
	"github.com/berth-dev/berth/internal/testenv"
)

// dockerd is Debian's daemon (docker.io). Another, newer docker CLI may
// come first on PATH on a developer's machine; the daemon is taken from its
// package's place first.
const dockerd = "/usr/sbin/dockerd"

// Engine is a running dockerd with its own storage.
type Engine struct {
	// Client does the container operations of enginetest.Engine.
	*enginetest.Client
	dir    string
	socket string
	cmd    *exec.Cmd
	exited chan struct{}
	output *testenv.SyncBuffer
}

// Start starts dockerd, waits for its API and imports the test image
// (enginetest.Image). Everything (containers, daemon, its containerd,
// storage) is removed when the test ends. Start takes about two seconds. A
// missing dockerd, containerd, runc or static busybox, or not running as
// root, marks the test unavailable (skip, or failure under CI).
func Start(t testing.TB) *Engine {
	t.Helper()
	path := dockerd
	if _, err := os.Stat(path); err != nil {
		path = testenv.LookPath(t, "dockerd", "docker.io")
	}
	testenv.LookPath(t, "containerd", "containerd (a dependency of docker.io)")
	testenv.LookPath(t, "runc", "runc")
	rootfs := enginetest.ImageTar(t)
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "docker tests need root (dockerd)")
	}

	// A short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "berth-docker-")
	if err != nil {
		t.Fatalf("dockertest: creating temp dir: %v", err)
	}
	e := &Engine{
		Client: enginetest.NewClient(filepath.Join(dir, "docker.sock")),
		dir:    dir,
		socket: filepath.Join(dir, "docker.sock"),
		output: &testenv.SyncBuffer{},
	}
	t.Cleanup(func() { e.cleanup(t) })

	// An empty configuration file of its own keeps the machine's
	// /etc/docker/daemon.json out of the picture.
	config := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(config, []byte("{}\n"), 0o644); err != nil {
		t.Fatalf("dockertest: writing %s: %v", config, err)
	}
	e.cmd = exec.Command(path,
		"--config-file", config,
		"--data-root", filepath.Join(dir, "root"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", e.pidfile(),
		"-H", "unix://"+e.socket,
		"--storage-driver", "vfs",
		"--iptables=false", "--bridge=none", "--ip-forward=false", "--ip-masq=false",
		"--exec-opt", "native.cgroupdriver=cgroupfs",
	)
	e.cmd.Dir = dir
	e.cmd.Stdout, e.cmd.Stderr = e.output, e.output
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := e.cmd.Start(); err != nil {
		t.Fatalf("dockertest: starting %s: %v", path, err)
	}
	e.exited = make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(e.exited) }()
	e.WaitForAPI(t, "dockerd on "+e.socket, 60*time.Second, e.exited, e.output.String)

	if err := e.ImportImage(rootfs, enginetest.Image); err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	return e
}

func (e *Engine) pidfile() string { return filepath.Join(e.dir, "docker.pid") }

// Kind is "docker".
func (e *Engine) Kind() string { return "docker" }

// Host is the API socket as a Docker host URL (unix:///…).
func (e *Engine) Host() string { return "unix://" + e.socket }

// HTTPClient returns a client that talks to the engine's socket whatever the
// URL's host is.
func (e *Engine) HTTPClient() *http.Client { return e.HTTP() }

// Dir is the engine's private directory (configuration, storage, socket).
func (e *Engine) Dir() string { return e.dir }

// ServicePIDs are dockerd and the containerd it runs: a stats call keeps
// both busy.
func (e *Engine) ServicePIDs() []int {
	pids := []int{e.cmd.Process.Pid}
	if pid, err := readPid(filepath.Join(e.dir, "exec", "containerd", "containerd.pid")); err == nil {
		pids = append(pids, pid)
	}
	return pids
}

// StopService stops dockerd, which stops its containers as it exits.
// Cleanup copes with it.
func (e *Engine) StopService(t testing.TB) {
	t.Helper()
	e.stopDaemon(t)
}

// stopDaemon stops dockerd by the PID in its pidfile (SIGTERM; SIGKILL to
// the process group after 30 s) and waits for it.
func (e *Engine) stopDaemon(t testing.TB) {
	select {
	case <-e.exited:
		return
	default:
	}
	pid, err := readPid(e.pidfile())
	if err != nil {
		t.Logf("dockertest: %v; stopping the process started", err)
		pid = e.cmd.Process.Pid
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(30 * time.Second):
		t.Logf("dockertest: dockerd did not stop within 30s, killing it")
		_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
		<-e.exited
	}
}

func readPid(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(bytes.TrimSpace(data)))
}

func (e *Engine) cleanup(t testing.TB) {
	if e.cmd != nil && e.cmd.Process != nil {
		select {
		case <-e.exited:
		default:
			// Removing the containers first (SIGKILL) keeps dockerd's own
			// shutdown from waiting out each container's stop timeout.
			if err := e.RemoveAll(); err != nil {
				t.Logf("dockertest: removing containers: %v", err)
			}
		}
		e.stopDaemon(t)
	}
	if t.Failed() && e.output.String() != "" {
		t.Logf("dockerd output:\n%s", e.output.String())
	}
	// containerd and its shims name the exec root on their command line.
	enginetest.KillLeftovers(t, "cmdline", []byte(e.dir+"/"))
	enginetest.RemoveDir(t, e.dir)
}

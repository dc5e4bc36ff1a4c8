// Package testenv gives tests access to the real components they run against
// (Prometheus, Alertmanager, node_exporter, Podman, Berth's own binaries) and
// decides what happens when one is missing: under BERTH_REQUIRE_INTEGRATION=1
// (CI) the test fails, elsewhere it is skipped with a loud message.
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Required reports whether integration tests must run (CI).
func Required() bool { return os.Getenv("BERTH_REQUIRE_INTEGRATION") == "1" }

// Unavailable fails the test under CI and skips it elsewhere, saying what is
// missing and how to get it.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("integration component unavailable (BERTH_REQUIRE_INTEGRATION=1): %s", msg)
	}
	t.Skipf("SKIPPING INTEGRATION TEST: %s (run `make test` as root to install it)", msg)
}

// LookPath returns the path of a binary the test needs, or marks the test
// unavailable.
func LookPath(t testing.TB, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s not found in PATH (Debian package %s)", name, debianPackage)
	}
	return path
}

// FreePort returns a loopback address with a port that was free a moment ago.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// RepoRoot is the module root, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildMu    sync.Mutex
	builtPaths = map[string]string{}
	buildDir   string
)

// Binary builds one of the module's commands (e.g. "berth-exporter") once per
// test process and returns the path of the executable.
func Binary(t testing.TB, command string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := builtPaths[command]; ok {
		return p
	}
	if buildDir == "" {
		dir, err := os.MkdirTemp("", "berth-test-bin-")
		if err != nil {
			t.Fatalf("creating build dir: %v", err)
		}
		buildDir = dir
	}
	out := filepath.Join(buildDir, command)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/"+command)
	cmd.Dir = RepoRoot()
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", command, err, strings.TrimSpace(string(output)))
	}
	builtPaths[command] = out
	return out
}

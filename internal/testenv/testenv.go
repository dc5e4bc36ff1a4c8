// Package testenv gives tests access to the real components they run against
// (Prometheus, Alertmanager, node_exporter, Podman, Berth's own binaries) and
// decides what happens when one is missing: under BERTH_REQUIRE_INTEGRATION=1
// (CI) the test fails, elsewhere it is skipped with a loud message.
package testenv

import (
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/common/promslog"
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

// binDir is where `make build` puts Berth's commands and `make test-deps`
// the tools the tests run (BERTH_BIN_DIR overrides it).
func binDir() string {
	if dir := os.Getenv("BERTH_BIN_DIR"); dir != "" {
		return dir
	}
	return filepath.Join(RepoRoot(), "bin")
}

// Binary returns the path of one of the module's commands (e.g.
// "berth-exporter") as built by `make build`. Tests never build it
// themselves: on a cold cache that compiles all of Prometheus inside a test.
// A missing binary, or one older than the source it is built from, marks the
// test unavailable, naming the make target to run.
func Binary(t testing.TB, command string) string {
	t.Helper()
	path := filepath.Join(binDir(), command)
	info, err := os.Stat(path)
	if err != nil {
		Unavailable(t, "%s not built (run `make build`, or `make test` which builds it)", path)
	}
	if newer, ok := newestSource(); ok && newer.ModTime().After(info.ModTime()) {
		Unavailable(t, "%s is older than %s (run `make build`)", path, newer.Name())
	}
	return path
}

// Tool returns the path of a tool `make test-deps` builds for the tests
// (the pinned, trimmed promtool), or marks the test unavailable.
func Tool(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(binDir(), "tools", name)
	if _, err := os.Stat(path); err != nil {
		Unavailable(t, "%s not built (run `make test-deps`, or `make test` which builds it)", path)
	}
	return path
}

var source struct {
	once   sync.Once
	newest fs.FileInfo
}

// newestSource finds the most recently changed file a binary is built from:
// non-test Go files, go.mod, go.sum and the files commands embed (rules,
// OpenAPI document). Test files, testdata, docs and build output are left
// out.
func newestSource() (fs.FileInfo, bool) {
	source.once.Do(func() {
		root := RepoRoot()
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			name := d.Name()
			if d.IsDir() {
				if path != root && (strings.HasPrefix(name, ".") || name == "bin" || name == "data" || name == "docs" || name == "testdata" || name == "tests") {
					return filepath.SkipDir
				}
				return nil
			}
			switch {
			case strings.HasSuffix(name, "_test.go"):
				return nil
			case strings.HasSuffix(name, ".go"), strings.HasSuffix(name, ".yml"), strings.HasSuffix(name, ".yaml"),
				name == "go.mod", name == "go.sum":
			default:
				return nil
			}
			info, err := d.Info()
			if err == nil && (source.newest == nil || info.ModTime().After(source.newest.ModTime())) {
				source.newest = info
			}
			return nil
		})
	})
	return source.newest, source.newest != nil
}

// Logger is a logger for components under test: silent, or logging to
// stderr with -v.
func Logger(testing.TB) *slog.Logger {
	if testing.Verbose() {
		return promslog.New(&promslog.Config{})
	}
	return promslog.NewNopLogger()
}

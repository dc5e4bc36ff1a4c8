package rules

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
)

// debianPromtool is Prometheus 2.42's promtool from Debian's prometheus
// package: the rules must keep loading in the 2.x a user may run.
const debianPromtool = "/usr/bin/promtool"

// promtool is one promtool binary the rules are checked with.
type promtool struct {
	name string
	path func(t *testing.T) string
}

// promtools are the two promtool versions every rule file and test file is
// run with: Prometheus 2.42 (Debian) and the version of the prometheus
// library pinned in go.mod (3.x, built by `make test-deps`). PromQL differs between
// them (3.x range selectors are left-open, for one), so both must pass.
var promtools = []promtool{
	{name: "promtool-2.42-debian", path: debianPromtoolPath},
	{name: "promtool-pinned", path: pinnedPromtoolPath},
}

func debianPromtoolPath(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(debianPromtool); err != nil {
		testenv.Unavailable(t, "%s not found (Debian package prometheus)", debianPromtool)
	}
	return debianPromtool
}

// pinnedPromtoolPath is the promtool of the prometheus module version in
// go.mod, built once by `make test-deps` without service discovery
// (-tags remove_all_sd).
func pinnedPromtoolPath(t *testing.T) string {
	t.Helper()
	return testenv.Tool(t, "promtool")
}

// ruleFiles lists the shipped rule files (absolute paths).
func ruleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(rulesDir(), "*.rules.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.rules.yml in %s (err: %v)", rulesDir(), err)
	}
	return files
}

// testFiles lists the promtool unit test files (absolute paths).
func testFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(rulesDir(), "tests", "*_test.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no promtool test files in %s/tests (err: %v)", rulesDir(), err)
	}
	return files
}

func rulesDir() string { return filepath.Join(testenv.RepoRoot(), "rules") }

func runTool(t *testing.T, dir, path string, args ...string) {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(path), strings.Join(args, " "), err, out)
	}
}

// TestRulesCheck runs `promtool check rules` on every rule file with both
// promtools.
func TestRulesCheck(t *testing.T) {
	files := ruleFiles(t)
	for _, pt := range promtools {
		t.Run(pt.name, func(t *testing.T) {
			path := pt.path(t)
			for _, f := range files {
				t.Run(filepath.Base(f), func(t *testing.T) {
					runTool(t, rulesDir(), path, "check", "rules", f)
				})
			}
		})
	}
}

// TestRulesUnit runs the promtool unit tests in tests/ with both promtools:
// every alert fires with its labels and annotations and stays silent below
// its threshold, every recording rule has exact values.
func TestRulesUnit(t *testing.T) {
	files := testFiles(t)
	for _, pt := range promtools {
		t.Run(pt.name, func(t *testing.T) {
			path := pt.path(t)
			for _, f := range files {
				t.Run(filepath.Base(f), func(t *testing.T) {
					t.Parallel()
					runTool(t, filepath.Dir(f), path, "test", "rules", filepath.Base(f))
				})
			}
		})
	}
}

// TestRulesAlertmanagerExample checks the example Alertmanager configuration
// with amtool and that its routing tree sends each severity where the
// documentation says.
func TestRulesAlertmanagerExample(t *testing.T) {
	amtool := testenv.LookPath(t, "amtool", "prometheus-alertmanager")
	config := filepath.Join(rulesDir(), "alertmanager.example.yml")
	runTool(t, rulesDir(), amtool, "check-config", config)

	for _, tc := range []struct {
		labels   []string
		receiver string
	}{
		{[]string{"alertname=BerthServerDown", "severity=critical", "server=alpha"}, "critical"},
		{[]string{"alertname=BerthDiskUsageHigh", "severity=warning", "server=alpha"}, "warning"},
		{[]string{"alertname=Unrelated"}, "warning"},
	} {
		args := append([]string{"config", "routes", "test", "--config.file=" + config, "--verify.receivers=" + tc.receiver}, tc.labels...)
		runTool(t, rulesDir(), amtool, args...)
	}
}

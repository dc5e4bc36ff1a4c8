package dashboards

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/podmantest"
	"github.com/berth-dev/berth/internal/testenv"
)

// A Coolify-looking workload on a real engine, so that the real
// berth-exporter publishes every container_* and berth_container_* name
// with real values: a managed application with CPU and memory limits
// (throttled: it wants a whole core and may use a tenth), a build helper
// container, and a container that exited with an error.
const (
	buildHelperImage = "docker.io/coollabsio/coolify-helper:1.0.15"
	buildContainer   = "k3m9x2p8q7w4e5r6t1y0u2i3" // Coolify names builds by a 24-character deployment id
)

func startWorkload(t *testing.T) *podmantest.Engine {
	t.Helper()
	engine := podmantest.Start(t)
	coolify := []string{
		"--label", "coolify.managed=true",
		"--label", "coolify.applicationId=7",
		"--label", "coolify.type=application",
		"--label", "coolify.projectName=shop",
		"--label", "coolify.environmentName=production",
	}
	engine.Run(t, append(append([]string{"--name", "shop-web"}, coolify...),
		"--memory", "64m", "--cpus", "0.1", podmantest.Image, "/bin/sh", "-c", "yes > /dev/null")...)
	engine.Podman(t, "tag", podmantest.Image, buildHelperImage)
	engine.Run(t, "--name", buildContainer, buildHelperImage, "/bin/sleep", "3600")
	engine.Run(t, append(append([]string{"--name", "shop-migrate"}, coolify...),
		podmantest.Image, "/bin/sh", "-c", "exit 3")...)
	return engine
}

// oomKill starts a managed container whose shell is OOM-killed inside its
// 16 MiB cgroup (notes/podman.md) some seconds later, once the embedded
// store scrapes it: the OOM panels then show a real increase, and
// BerthContainerOOMKilled (no for: duration) usually fires before the
// panels are checked.
func oomKill(t *testing.T, engine *podmantest.Engine) {
	t.Helper()
	engine.Run(t, "--name", "shop-worker",
		"--label", "coolify.managed=true", "--label", "coolify.applicationId=7",
		"--label", "coolify.projectName=shop", "--label", "coolify.environmentName=production",
		"--memory", "16m", "--memory-swap", "16m", podmantest.Image,
		"/bin/sh", "-c", `sleep 8; (x=$(head -c 64000000 /dev/zero | tr "\0" a)); sleep 3600`)
}

// binary builds one of Berth's commands; while a command does not exist
// yet (it is being written), the test says so and skips.
func binary(t *testing.T, command string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(testenv.RepoRoot(), "cmd", command, "main.go")); err != nil {
		t.Skipf("SKIPPING: cmd/%s does not exist yet (%v); the live dashboard test needs it", command, err)
	}
	return testenv.Binary(t, command)
}

// waitFor polls until cond returns nil or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func fetch(url string) (string, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %.300s", url, resp.Status, body)
	}
	return string(body), nil
}

// startExporter runs the real berth-exporter against the engine and waits
// until its /metrics shows the workload's containers.
func startExporter(t *testing.T, engine *podmantest.Engine, name, role, organization string) string {
	t.Helper()
	return startExporterWaiting(t, engine, name, role, organization,
		`name="shop-web"`, `name="`+buildContainer+`"`, `state="exited"`, "container_cpu_cfs_throttled_periods_total")
}

// startBuildServer runs a second engine, empty but for the build helper
// image, with a real berth-exporter as build server name: the deployer
// runs the build it places there as a real container, so that placement
// finds the build's peak memory in the store.
func startBuildServer(t *testing.T, name, organization string) (*podmantest.Engine, string) {
	t.Helper()
	engine := podmantest.Start(t)
	engine.Podman(t, "tag", podmantest.Image, buildHelperImage)
	return engine, startExporterWaiting(t, engine, name, "build", organization, `berth_builds_active 0`)
}

// startExporterWaiting runs the real berth-exporter against the engine and
// waits until its /metrics shows every one of want.
func startExporterWaiting(t *testing.T, engine *podmantest.Engine, name, role, organization string, want ...string) string {
	t.Helper()
	addr := testenv.FreePort(t)
	testenv.Start(t, binary(t, "berth-exporter"),
		"--web.listen-address="+addr,
		"--server.name="+name,
		"--server.role="+role,
		"--server.organization="+organization,
		"--collector.containers.docker-host="+engine.Host(),
	)
	url := "http://" + addr + "/metrics"
	waitFor(t, "berth-exporter shows the workload", 60*time.Second, func() error {
		body, err := fetch(url)
		if err != nil {
			return err
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				return fmt.Errorf("no %s in /metrics yet", w)
			}
		}
		return nil
	})
	return addr
}

// TestIntegrationDashboards checks the dashboards against the real
// components: every metric name they use is produced by berth-exporter, a
// recording rule or berth-placement, and every panel query returns data
// through berth-placement's embedded Prometheus API, scraping two real
// berth-exporters (one with a real Podman workload, one a build server on
// its own engine) and a simulated fleet with a build server and two
// organizations.
func TestIntegrationDashboards(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; skipped with -short")
	}
	engine := startWorkload(t)
	exporter := startExporter(t, engine, "real-1", "app", "org-1")
	buildEngine, buildExporter := startBuildServer(t, "real-build", "org-2")
	oomKill(t, engine)
	stack := startPlacementStack(t, []string{exporter, buildExporter}, buildEngine)

	t.Run("MetricNamesAreReal", func(t *testing.T) {
		checkMetricNames(t, map[string]map[string]bool{
			"berth-exporter":  metricFamilies(t, "http://"+exporter+"/metrics"),
			"berth-placement": metricFamilies(t, stack.placement+"/metrics"),
			"rules":           ruleSource(t),
		})
	})
	t.Run("KnownAnswers", func(t *testing.T) {
		checkKnownAnswers(t, newPromClient(stack.placement+"/prometheus"))
	})
	t.Run("PanelsReturnData", func(t *testing.T) {
		checkPanelsReturnData(t, newPromClient(stack.placement+"/prometheus"), time.Now().Add(90*time.Second))
	})
	// The same dashboards against a stock Prometheus 2.x loaded with
	// rules/ (remote mode), scraping the same components.
	t.Run("Prometheus2", func(t *testing.T) {
		prom := startPrometheus2(t, stack)
		t.Run("KnownAnswers", func(t *testing.T) { checkKnownAnswers(t, prom) })
		t.Run("PanelsReturnData", func(t *testing.T) { checkPanelsReturnData(t, prom, time.Now().Add(90*time.Second)) })
	})
}

package containers

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-dev/berth/exporter"
	"github.com/berth-dev/berth/internal/enginetest"
	"github.com/berth-dev/berth/internal/metriclint"
)

// probeDesc is the metric of a trivial second collector: faults of the
// container collector must not take other collectors down with it.
var probeDesc = prometheus.NewDesc("berth_test_probe", "Always 1.", nil, nil)

// startExporter serves /metrics with the container collector and a trivial
// "probe" collector through the real scrape engine and handler.
func startExporter(t testing.TB, cfg Config) (string, *Collector) {
	t.Helper()
	if cfg.LabelMap == "" {
		cfg.LabelMap = DefaultLabelMap
	}
	c, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	probe := exporter.CollectorFunc(func(_ context.Context, ch chan<- prometheus.Metric) error {
		ch <- prometheus.MustNewConstMetric(probeDesc, prometheus.GaugeValue, 1)
		return nil
	})
	scraper := exporter.NewScraper(map[string]exporter.Collector{"containers": c, "probe": probe}, testLogger(t))
	srv := httptest.NewServer(exporter.NewHandler(scraper, prometheus.NewRegistry(), testLogger(t)))
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics", c
}

// testClient guards against a hung exporter hanging the test run; it is a
// safety net, not an assertion about speed.
var testClient = &http.Client{Timeout: 30 * time.Second}

// waitFor scrapes until cond holds, giving up (failing) after a generous
// bound so a broken engine cannot hang CI; it returns the satisfying scrape.
func waitFor(t testing.TB, url, what string, cond func(scrape) bool) scrape {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := fetch(t, testClient, url, nil)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

const buildName = "k9f2h7d3s1a8q4w6e5r0t2y7" // a 24-character Coolify deployment id

// oomChild is a command whose subshell outgrows a 16 MiB limit and is
// OOM-killed while the container's main process lives on.
const oomChild = `(x=$(head -c 64000000 /dev/zero | tr "\0" a)); sleep 100000`

// TestIntegrationContainersLive runs a Coolify-like workload on each real
// engine (dockerd and Podman) and checks the exporter's view of it against
// the engine's own.
func TestIntegrationContainersLive(t *testing.T) {
	forEachEngine(t, testContainersLive)
}

func testContainersLive(t *testing.T, e enginetest.Engine) {
	helperImage := "docker.io/coollabsio/coolify-helper:1.0.15"
	e.TagImage(t, enginetest.Image, helperImage)

	e.RunContainer(t, enginetest.Spec{Name: "web-busy", Memory: 64 << 20, CPUs: 0.5,
		Labels: map[string]string{"coolify.managed": "true", "coolify.applicationId": "42", "coolify.type": "application",
			"coolify.projectName": "shop", "coolify.environmentName": "production",
			"traefik.http.middlewares.auth.basicauth.users": "admin:hunter2"},
		Cmd: []string{"/bin/sh", "-c", "yes >/dev/null"}})
	e.RunContainer(t, enginetest.Spec{Name: "db-idle", Memory: 32 << 20, CPUs: 1.5,
		Labels: map[string]string{"coolify.managed": "true", "coolify.databaseId": "7", "coolify.type": "database"},
		Cmd:    []string{"sleep", "100000"}})
	e.RunContainer(t, enginetest.Spec{Name: buildName, Image: helperImage, Cmd: []string{"sleep", "100000"}})
	e.RunContainer(t, enginetest.Spec{Name: "job-exit3", Cmd: []string{"/bin/sh", "-c", "exit 3"}})
	e.RunContainer(t, enginetest.Spec{Name: "oom-victim", Memory: 16 << 20, Cmd: []string{"/bin/sh", "-c", oomChild}})
	// Fails twice more after its first run: the engine's restart policy
	// restarts it exactly twice, then leaves it exited.
	e.RunContainer(t, enginetest.Spec{Name: "flaky", Restart: "on-failure:2", Cmd: []string{"/bin/sh", "-c", "sleep 0.2; exit 5"}})
	if code := e.WaitContainer(t, "job-exit3"); code != 3 {
		t.Fatalf("job-exit3 exited with %d, want 3", code)
	}
	// The OOM kill happens before the exporter starts watching.
	victimKills := waitForCgroupOOMKills(t, e, "oom-victim")

	// A relist interval far beyond the test: every change after the first
	// list must arrive through the events stream.
	url, _ := startExporter(t, Config{DockerHost: e.Host(), RelistInterval: time.Hour, KernelLog: "/dev/kmsg"})
	first := waitFor(t, url, "every container with its state", func(s scrape) bool {
		return len(s.find("berth_container_info", map[string]string{"name": "job-exit3", "state": "exited"})) == 1 &&
			len(s.find("container_memory_usage_bytes", map[string]string{"name": "web-busy"})) == 1 &&
			len(s.find("container_memory_usage_bytes", map[string]string{"name": "db-idle"})) == 1 &&
			len(s.find("container_memory_usage_bytes", map[string]string{"name": buildName})) == 1 &&
			len(s.find("container_memory_usage_bytes", map[string]string{"name": "oom-victim"})) == 1
	})
	if v := first.value(t, "berth_scrape_collector_success", map[string]string{"collector": "containers"}); v != 1 {
		t.Fatalf("containers collector success = %v", v)
	}
	if v := first.value(t, "berth_kernel_log_up", nil); v != 1 {
		t.Errorf("berth_kernel_log_up = %v, want 1 (the test runs as root)", v)
	}

	t.Run("limits", func(t *testing.T) {
		for _, tt := range []struct {
			name          string
			memory, quota float64 // quota 0: no series
		}{
			{"web-busy", 64 << 20, 50000},
			{"db-idle", 32 << 20, 150000},
			{buildName, 0, 0},
			{"oom-victim", 16 << 20, 0},
		} {
			sel := map[string]string{"name": tt.name}
			if got := first.value(t, "container_spec_memory_limit_bytes", sel); got != tt.memory {
				t.Errorf("%s: memory limit %v, want %v", tt.name, got, tt.memory)
			}
			if got := first.value(t, "container_spec_cpu_period", sel); got != 100000 {
				t.Errorf("%s: cpu period %v, want 100000", tt.name, got)
			}
			quota := first.find("container_spec_cpu_quota", sel)
			switch {
			case tt.quota == 0 && len(quota) != 0:
				t.Errorf("%s: cpu quota series present for an unlimited container", tt.name)
			case tt.quota != 0 && (len(quota) != 1 || metricValue(quota[0]) != tt.quota):
				t.Errorf("%s: cpu quota %v, want %v", tt.name, quota, tt.quota)
			}
		}
	})

	t.Run("working set", func(t *testing.T) {
		for _, name := range []string{"web-busy", "db-idle", "oom-victim"} {
			sel := map[string]string{"name": name}
			ws := first.value(t, "container_memory_working_set_bytes", sel)
			limit := first.value(t, "container_spec_memory_limit_bytes", sel)
			if ws <= 0 || ws > limit {
				t.Errorf("%s: working set %v, want in (0, %v]", name, ws, limit)
			}
		}
	})

	t.Run("labels and roles", func(t *testing.T) {
		want := map[string]map[string]string{
			"web-busy": {"managed": "true", "application_id": "42", "resource_type": "application", "project": "shop",
				"environment": "production", "database_id": "", "role": "app", "image": enginetest.Image},
			"db-idle":   {"managed": "true", "database_id": "7", "application_id": "", "resource_type": "database", "role": "database"},
			buildName:   {"managed": "", "application_id": "", "role": "build", "image": helperImage},
			"job-exit3": {"role": "other", "state": "exited", "id": ""},
		}
		for name, labels := range want {
			ms := first.find("berth_container_info", map[string]string{"name": name})
			if len(ms) != 1 {
				t.Fatalf("%s: %d info series", name, len(ms))
			}
			for k, v := range labels {
				if got := labelOf(ms[0], k); got != v {
					t.Errorf("%s: label %s=%q, want %q", name, k, got, v)
				}
			}
		}
		web := first.find("berth_container_info", map[string]string{"name": "web-busy"})[0]
		if id := labelOf(web, "id"); !strings.HasPrefix(id, "/") || !strings.Contains(id, e.InspectContainer(t, "web-busy").ID) {
			t.Errorf("web-busy id label %q, want its cgroup path", id)
		}
		// The same label names on every container series, and nothing else.
		base := []string{"application_id", "database_id", "environment", "id", "image", "managed", "name", "project", "pull_request", "resource_type", "role", "service_id"}
		for fam, mf := range first {
			if !strings.HasPrefix(fam, "container_") && !strings.HasPrefix(fam, "berth_container_") {
				continue
			}
			extra := map[string]string{"berth_container_info": "state", "container_cpu_usage_seconds_total": "cpu"}[fam]
			want := append([]string(nil), base...)
			if extra != "" {
				want = append(want, extra)
			}
			sortStrings(want)
			for _, m := range mf.GetMetric() {
				if got := labelNames(m); !reflect.DeepEqual(got, want) {
					t.Errorf("%s: label names %v, want %v", fam, got, want)
				}
				for _, lp := range m.GetLabel() {
					if strings.Contains(lp.GetValue(), "hunter2") {
						t.Errorf("%s: a label outside the allow-list leaked: %s", fam, lp)
					}
				}
			}
		}
		if v := first.value(t, "berth_builds_active", nil); v != 1 {
			t.Errorf("berth_builds_active = %v, want 1", v)
		}
	})

	t.Run("exited and oom", func(t *testing.T) {
		if v := first.value(t, "berth_container_exit_code", map[string]string{"name": "job-exit3"}); v != 3 {
			t.Errorf("job-exit3 exit code %v, want 3", v)
		}
		if n := len(first.find("container_memory_usage_bytes", map[string]string{"name": "job-exit3"})); n != 0 {
			t.Errorf("exited container has %d resource series", n)
		}
		if n := len(first.find("berth_container_info", map[string]string{"name": "oom-victim", "state": "running"})); n != 1 {
			t.Errorf("oom-victim should still run after the OOM kill in its subshell")
		}
		// A kill from before the exporter watched is not counted, as any
		// counter starts at 0 with its process.
		t.Logf("oom-victim's cgroup counted %d OOM kills before the exporter started", victimKills)
		if v := first.value(t, "container_oom_events_total", map[string]string{"name": "oom-victim", "id": ""}); v != 0 {
			t.Errorf("oom-victim, killed before the exporter started: container_oom_events_total = %v, want 0", v)
		}
		// One killed while the exporter watches: the kernel's own count,
		// from the container's cgroup, and the metric say the same (the OOM
		// killer may take more than the subshell).
		e.RunContainer(t, enginetest.Spec{Name: "oom-later", Memory: 16 << 20, Cmd: []string{"/bin/sh", "-c", oomChild}})
		kills := waitForCgroupOOMKills(t, e, "oom-later")
		sel := map[string]string{"name": "oom-later"}
		s := waitFor(t, url, "oom-later's OOM kill", func(s scrape) bool {
			ms := s.find("container_oom_events_total", sel)
			return len(ms) == 1 && metricValue(ms[0]) >= 1
		})
		if v, now := s.value(t, "container_oom_events_total", sel), oomKills(t, labelOf(s.find("container_memory_usage_bytes", sel)[0], "id")); v != float64(now) {
			t.Errorf("container_oom_events_total = %v, the cgroup counts %d (%d a moment before)", v, now, kills)
		}
	})

	t.Run("restarts", func(t *testing.T) {
		sel := map[string]string{"name": "flaky"}
		// The engine's final word first (between restarts Docker shows it
		// "restarting", Podman "stopped"; "exited" once it gave up), then
		// the exporter's.
		deadline := time.Now().Add(60 * time.Second)
		for e.InspectContainer(t, "flaky").Status != "exited" {
			if time.Now().After(deadline) {
				t.Fatal("flaky did not end up exited within 60s")
			}
			time.Sleep(100 * time.Millisecond)
		}
		if got := e.InspectContainer(t, "flaky").RestartCount; got != 2 {
			t.Fatalf("%s inspect flaky: RestartCount %d, want 2 (restart policy on-failure:2)", e.Kind(), got)
		}
		s := waitFor(t, url, "the exporter to show flaky exited after 2 restarts", func(s scrape) bool {
			return len(s.find("berth_container_info", map[string]string{"name": "flaky", "state": "exited"})) == 1 &&
				s.value(t, "berth_container_restarts", sel) == 2
		})
		if v := s.value(t, "berth_container_exit_code", sel); v != 5 {
			t.Errorf("berth_container_exit_code = %v, want 5", v)
		}
		if v := s.value(t, "berth_container_restarts", map[string]string{"name": "web-busy"}); v != 0 {
			t.Errorf("web-busy restarts = %v, want 0", v)
		}
	})

	t.Run("start time", func(t *testing.T) {
		for _, name := range []string{"web-busy", "db-idle", "oom-victim"} {
			started := e.InspectContainer(t, name).StartedAt
			got := first.value(t, "container_start_time_seconds", map[string]string{"name": name})
			if want := float64(started.UnixNano()) / 1e9; math.Abs(got-want) > 1 {
				t.Errorf("%s: container_start_time_seconds = %.3f, %s inspect says %.3f", name, got, e.Kind(), want)
			}
		}
	})

	t.Run("cpu", func(t *testing.T) {
		cpu := func(s scrape, name string) float64 {
			return s.value(t, "container_cpu_usage_seconds_total", map[string]string{"name": name, "cpu": "total"})
		}
		busy0, idle0 := cpu(first, "web-busy"), cpu(first, "db-idle")
		later := waitFor(t, url, "the busy container to burn CPU", func(s scrape) bool {
			return cpu(s, "web-busy")-busy0 >= 0.5
		})
		busy, idle := cpu(later, "web-busy")-busy0, cpu(later, "db-idle")-idle0
		if idle > busy/20 {
			t.Errorf("idle container used %.3fs of CPU while the busy one used %.3fs; want it to barely move", idle, busy)
		}
		if later.value(t, "container_cpu_cfs_periods_total", map[string]string{"name": "web-busy"}) <= 0 {
			t.Errorf("busy container with a quota has no CFS periods")
		}
	})

	t.Run("lint", func(t *testing.T) {
		resp, err := testClient.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		metriclint.Text(t, resp.Body, nil)
	})

	t.Run("events", func(t *testing.T) {
		e.RunContainer(t, enginetest.Spec{Name: "late-arrival", Labels: map[string]string{"coolify.type": "service"}, Cmd: []string{"sleep", "100000"}})
		s := waitFor(t, url, "a container started after the first list", func(s scrape) bool {
			return len(s.find("berth_container_info", map[string]string{"name": "late-arrival", "state": "running"})) == 1
		})
		if n := len(s.find("container_memory_usage_bytes", map[string]string{"name": "late-arrival", "role": "service"})); n != 1 {
			t.Errorf("late-arrival has %d memory series with role service, want 1", n)
		}
		e.StopContainer(t, "late-arrival")
		waitFor(t, url, "the stopped container to show as exited", func(s scrape) bool {
			return len(s.find("berth_container_info", map[string]string{"name": "late-arrival", "state": "exited"})) == 1 &&
				len(s.find("container_memory_usage_bytes", map[string]string{"name": "late-arrival"})) == 0
		})
	})

	t.Run("removal", func(t *testing.T) {
		// The exporter holds the running container's cgroup files open
		// between scrapes, and lets go of them once it is gone.
		// Five files on cgroup v1 (docs/exporter.md); net/dev is reopened
		// on each scrape.
		cgroup := labelOf(first.find("container_memory_usage_bytes", map[string]string{"name": "db-idle"})[0], "id")
		if n := openFilesUnder(t, cgroup); n != 5 {
			t.Errorf("%d files of db-idle's cgroup %s are held open between scrapes, want 5", n, cgroup)
		}
		netDev := netDevPath("/proc", e.InspectContainer(t, "db-idle").Pid)
		if n := openFiles(t, func(target string) bool { return target == netDev }); n != 0 {
			t.Errorf("%s is held open %d times between scrapes, want 0", netDev, n)
		}
		e.RemoveContainer(t, "db-idle")
		// No waiting: the very first scrape after the removal returned has
		// nothing of the container, whether or not the engine's removal
		// event has reached the exporter yet.
		after := fetch(t, testClient, url, nil)
		for fam := range after {
			if ms := after.find(fam, map[string]string{"name": "db-idle"}); len(ms) != 0 {
				t.Errorf("first scrape after removal: %s still has %d series of the removed container: %v", fam, len(ms), ms)
			}
		}
		if n := len(after.find("berth_container_info", map[string]string{"name": "web-busy"})); n != 1 {
			t.Errorf("web-busy vanished with db-idle")
		}
		if n := openFilesUnder(t, cgroup); n != 0 {
			t.Errorf("%d files of the removed container's cgroup are still open", n)
		}
	})

	t.Run("api goes away", func(t *testing.T) {
		e.StopService(t)
		s := waitFor(t, url, "the collector to fail once the API is gone", func(s scrape) bool {
			return s.value(t, "berth_scrape_collector_success", map[string]string{"collector": "containers"}) == 0
		})
		if n := len(s["berth_container_info"].GetMetric()); n != 0 {
			t.Errorf("%d container series served from stale metadata", n)
		}
		if v := s.value(t, "berth_test_probe", nil); v != 1 {
			t.Errorf("the other collector stopped answering")
		}
	})
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// waitForCgroupOOMKills waits until the cgroup of a running container
// counts an OOM kill and returns its count.
func waitForCgroupOOMKills(t *testing.T, e enginetest.Engine, name string) int {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		pid := e.InspectContainer(t, name).Pid
		data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
		if err != nil {
			t.Fatalf("%s: reading its cgroup: %v", name, err)
		}
		v1, _, err := parseProcCgroup(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n := oomKills(t, v1["memory"].path); n > 0 {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no OOM kill in its cgroup within 60s", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// oomKills reads oom_kill from memory.oom_control of a cgroup v1 path as
// the id label shows it (the memory controller's path).
func oomKills(t *testing.T, cgroup string) int {
	t.Helper()
	path := filepath.Join("/sys/fs/cgroup/memory", cgroup, "memory.oom_control")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the OOM kill count: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("parsing %s: %v", path, err)
			}
			return n
		}
	}
	t.Fatalf("%s has no oom_kill line:\n%s", path, data)
	return 0
}

// openFilesUnder counts this process's open files whose path contains the
// cgroup path (in any controller's hierarchy).
func openFilesUnder(t *testing.T, cgroup string) int {
	t.Helper()
	if cgroup == "" {
		t.Fatal("empty cgroup path")
	}
	return openFiles(t, func(target string) bool {
		return strings.HasPrefix(target, "/sys/fs/cgroup/") && strings.Contains(target, cgroup+"/")
	})
}

// openFiles counts this process's open files whose path matches.
func openFiles(t *testing.T, match func(target string) bool) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, entry := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", entry.Name()))
		if err == nil && match(target) {
			n++
		}
	}
	return n
}

package containers

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/berth-dev/berth/internal/metriclint"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func encodeText(t testing.TB, families []*dto.MetricFamily) string {
	t.Helper()
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("encoding: %v", err)
		}
	}
	return buf.String()
}

// TestCollectorFixtures runs the whole collector over the fixture trees with
// a canned engine and compares /metrics with golden files (regenerate with
// go test -run TestCollectorFixtures -update, then review the diff).
func TestCollectorFixtures(t *testing.T) {
	for tree, containers := range map[string][]fakeContainer{
		"cgroupv1":      fixtureContainers(),
		"cgroupv2":      fixtureContainers(),
		"cgroupv2-host": hostContainers(),
	} {
		t.Run(tree, func(t *testing.T) {
			engine := &fakeEngine{containers: containers}
			c, err := New(Config{
				DockerHost:     serveUnix(t, engine),
				LabelMap:       DefaultLabelMap,
				ProcFS:         filepath.Join("testdata", tree, "proc"),
				CgroupFS:       filepath.Join("testdata", tree, "sys/fs/cgroup"),
				RelistInterval: time.Minute,
				APIWait:        5 * time.Second,
			}, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			got, err := gather(t, c)
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if strings.Contains(got, "secret") || strings.Contains(got, "traefik") {
				t.Errorf("a Docker label outside the allow-list was exported:\n%s", got)
			}
			golden := filepath.Join("testdata", tree+".golden.prom")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if got != string(want) {
				t.Errorf("metrics differ from %s (run with -update and review the diff):\n%s", golden, got)
			}
			metriclint.Text(t, strings.NewReader(got), nil)
		})
	}
}

// TestCollectorVanishedContainer: a container the cache still lists as
// running whose process and cgroup are gone (stopped mid-scrape) loses its
// resource series without failing the scrape for the others.
func TestCollectorVanishedContainer(t *testing.T) {
	containers := fixtureContainers()
	containers[1].Pid = 999999 // no such process in the fixture tree
	// Stopped a moment ago: the engine, asked, says it still exists.
	containers = append(containers, fakeContainer{
		ID: strings.Repeat("ab", 32), Name: "just-stopped", Image: "busybox", State: "exited", ExitCode: 137,
		FinishedAt: time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano),
	})
	c := fixtureCollector(t, &fakeEngine{containers: containers}, "cgroupv2")
	text, err := gather(t, c)
	if err != nil {
		t.Fatalf("Update failed because of one vanished container: %v", err)
	}
	got := parseScrape(t, text)
	if n := len(got.find("container_memory_usage_bytes", map[string]string{"name": "web-x8k2m1"})); n != 1 {
		t.Errorf("the healthy container has %d memory series, want 1:\n%s", n, text)
	}
	// Its OOM count stays: like the metadata series it is the
	// container's, not its cgroup's.
	for name := range got {
		if strings.HasPrefix(name, "container_") && name != "container_oom_events_total" &&
			len(got.find(name, map[string]string{"name": "k9f2h7d3s1a8q4w6e5r0t2y7"})) > 0 {
			t.Errorf("the vanished container still has %s", name)
		}
	}
	if v := got.value(t, "berth_container_info", map[string]string{"name": "k9f2h7d3s1a8q4w6e5r0t2y7", "id": "", "state": "running"}); v != 1 {
		t.Errorf("the vanished container's info = %v, want 1 (the engine still says running)", v)
	}
	if v := got.value(t, "berth_container_exit_code", map[string]string{"name": "just-stopped"}); v != 137 {
		t.Errorf("the confirmed just-stopped container's exit code = %v, want 137", v)
	}
}

// TestCollectorVanishedUnconfirmed: a container the cache lists as running
// whose process is gone, and one that stopped a moment ago, while the
// engine does not answer the check in time (they may well be removed
// already), are left out of the scrape entirely; the others are served from
// the still fresh metadata.
func TestCollectorVanishedUnconfirmed(t *testing.T) {
	containers := fixtureContainers()
	containers[1].Pid = 999999 // no such process in the fixture tree
	containers = append(containers, fakeContainer{
		ID: strings.Repeat("ab", 32), Name: "just-stopped", Image: "busybox", State: "exited", ExitCode: 137,
		FinishedAt: time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano),
	})
	gate := &hangSwitch{next: &fakeEngine{containers: containers}}
	c, err := New(Config{
		DockerHost: serveUnix(t, gate), LabelMap: DefaultLabelMap,
		ProcFS: "testdata/cgroupv2/proc", CgroupFS: "testdata/cgroupv2/sys/fs/cgroup",
		APIWait: 5 * time.Second, RequestTimeout: time.Hour,
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.cache.snapshot(context.Background(), 5*time.Second); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	gate.hang()
	text, err := gather(t, c)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	got := parseScrape(t, text)
	for name := range got {
		for _, ct := range []string{"k9f2h7d3s1a8q4w6e5r0t2y7", "just-stopped"} {
			if n := len(got.find(name, map[string]string{"name": ct})); n > 0 {
				t.Errorf("unconfirmed %s still has %d %s series", ct, n, name)
			}
		}
	}
	// Stopped long ago: nothing to confirm, still reported.
	if n := len(got.find("berth_container_info", map[string]string{"name": "backup-of-db-1", "state": "exited"})); n != 1 {
		t.Errorf("the long-exited container has %d info series, want 1", n)
	}
	if n := len(got.find("container_memory_usage_bytes", map[string]string{"name": "web-x8k2m1"})); n != 1 {
		t.Errorf("the healthy container has %d memory series, want 1:\n%s", n, text)
	}
	if v := got.value(t, "berth_builds_active", nil); v != 0 {
		t.Errorf("berth_builds_active = %v, want 0: the vanished build container is not counted", v)
	}
}

// TestCollectorConcurrentScrapes: two Prometheus servers scraping at once
// share the open cgroup files and label pairs safely (run with -race) and
// get the same answer.
func TestCollectorConcurrentScrapes(t *testing.T) {
	c := fixtureCollector(t, &fakeEngine{containers: fixtureContainers()}, "cgroupv1")
	want, err := gather(t, c)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]string, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = gather(t, c)
		}()
	}
	wg.Wait()
	for i, got := range results {
		if got != want {
			t.Errorf("concurrent scrape %d differs:\n%s\nwant:\n%s", i, got, want)
		}
	}
}

// TestCollectorStateAndPidAgree: the state and the pid come from the same
// inspect, whatever the list said a moment before. A container the list
// calls running while inspect already says restarting (pid 0, as Docker
// reports a restart back-off) has no resource series; one the list still
// calls restarting while inspect says running (with its new pid) has them.
func TestCollectorStateAndPidAgree(t *testing.T) {
	containers := fixtureContainers()
	containers[0].State, containers[0].InspectState, containers[0].Pid = "running", "restarting", 0
	containers[1].State, containers[1].InspectState = "restarting", "running"
	c := fixtureCollector(t, &fakeEngine{containers: containers}, "cgroupv1")
	text, err := gather(t, c)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	got := parseScrape(t, text)
	for _, tt := range []struct {
		name, state string
		resources   int
	}{
		{"web-x8k2m1", "restarting", 0},
		{"k9f2h7d3s1a8q4w6e5r0t2y7", "running", 1},
	} {
		sel := map[string]string{"name": tt.name}
		if n := len(got.find("berth_container_info", map[string]string{"name": tt.name, "state": tt.state})); n != 1 {
			t.Errorf("%s: %d info series with state=%q, want 1:\n%s", tt.name, n, tt.state, text)
		}
		if n := len(got.find("container_memory_usage_bytes", sel)); n != tt.resources {
			t.Errorf("%s (%s): %d memory series, want %d", tt.name, tt.state, n, tt.resources)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{DockerHost: "ftp://x"}, "unsupported scheme"},
		{Config{DockerHost: "unix://"}, "socket path is empty"},
		{Config{DockerHost: "unix:///x", LabelMap: "a=b-c"}, "not a valid Prometheus label name"},
		{Config{DockerHost: "unix:///x", LabelMap: "a=role"}, "reserved"},
		{Config{DockerHost: "unix:///x", LabelMap: "a=x,b=x"}, "used twice"},
		{Config{DockerHost: "unix:///x", LabelMap: "a=x,a=y"}, "mapped twice"},
		{Config{DockerHost: "unix:///x", LabelMap: "novalue"}, "want docker.label=prometheus_label"},
		{Config{DockerHost: "unix:///x", BuildImagePattern: "(unclosed"}, "build image pattern"},
	}
	for _, tt := range tests {
		c, err := New(tt.cfg, testLogger(t))
		if err == nil {
			c.Close()
			t.Errorf("New(%+v) succeeded, want error containing %q", tt.cfg, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want error containing %q", tt.cfg, err, tt.want)
		}
	}
}

func TestRoles(t *testing.T) {
	rules, err := newRoleRules(DefaultBuildImagePattern)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, image string
		labels      map[string]string
		want        string
	}{
		{"k9f2h7d3s1a8q4w6e5r0t2y7", "ghcr.io/coollabsio/coolify-helper:1.0.8", nil, RoleBuild},
		{"k9f2h7d3s1a8q4w6e5r0t2y7", "docker.io/coollabsio/coolify-helper@sha256:abc", nil, RoleBuild},
		{"short-name", "ghcr.io/coollabsio/coolify-helper:1.0.8", nil, RoleOther},            // helper not named by a deployment id
		{"k9f2h7d3s1a8q4w6e5r0t2y7", "ghcr.io/coollabsio/coolify-helperx:1", nil, RoleOther}, // not the helper image
		{"K9F2H7D3S1A8Q4W6E5R0T2Y7", "ghcr.io/coollabsio/coolify-helper:1", nil, RoleOther},  // ids are lowercase
		{"buildx_buildkit_coolify-builder0", "moby/buildkit:buildx-stable-1", nil, RoleBuild},
		{"backup-of-postgres-1", "postgres:16", map[string]string{"coolify.type": "database"}, RoleBackup},
		{"coolify-proxy", "traefik:v3.1", nil, RoleInfra},
		{"coolify-sentinel", "ghcr.io/coollabsio/sentinel:0.0.15", nil, RoleInfra},
		{"coolify-log-drain", "fluent-bit", nil, RoleInfra},
		{"web", "app:1", map[string]string{"coolify.type": "application"}, RoleApp},
		{"db", "postgres:16", map[string]string{"coolify.type": "database"}, RoleDatabase},
		{"svc", "minio", map[string]string{"coolify.type": "service"}, RoleService},
		{"coolify", "ghcr.io/coollabsio/coolify:4", nil, RoleOther},
		{"x", "y", map[string]string{"coolify.type": "something-new"}, RoleOther},
	}
	for _, tt := range tests {
		if got := rules.role(tt.name, tt.image, tt.labels); got != tt.want {
			t.Errorf("role(%q, %q, %v) = %q, want %q", tt.name, tt.image, tt.labels, got, tt.want)
		}
	}
}

func TestLabelMapValues(t *testing.T) {
	m, err := parseLabelMap(" coolify.applicationId = application_id ,team=team,")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.names(), ","); got != "application_id,team" {
		t.Errorf("names = %s", got)
	}
	got := m.values(map[string]string{"coolify.applicationId": "7", "other": "x", "team": "a\xffb"})
	if got[0] != "7" || got[1] != "a\uFFFDb" {
		t.Errorf("values = %q, want [7 a\uFFFDb] (absent labels empty, invalid UTF-8 replaced)", got)
	}
	if m, err := parseLabelMap(""); err != nil || len(m) != 0 {
		t.Errorf("empty map: %v %v", m, err)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"1.41", "1.47", -1}, {"1.9", "1.41", -1}, {"1.47", "1.47", 0}, {"1.50", "1.47", 1}, {"2", "1.99", 1}} {
		if got := compareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("compareVersions(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

package promsource

import (
	"github.com/berth-dev/berth/placement/fit"
	"github.com/berth-dev/berth/placement/policy"

	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/berth-dev/berth/internal/fleetsim"
	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/embedded"
	berthrules "github.com/berth-dev/berth/rules"
)

const (
	gib = 1 << 30
	mib = 1 << 20
)

// testFleet: two app servers of one organization and a build server; the
// numbers are chosen so the recording rules' outputs are known exactly.
func testFleet() fleetsim.Spec {
	return fleetsim.Spec{Seed: 1, Servers: []fleetsim.ServerSpec{
		{
			Name: "app-1", Role: "app", Organization: "acme", Cores: 4,
			MemoryBytes: 8 * gib, MemoryUsedBytes: 2 * gib, DiskBytes: 100e9, DiskUsedBytes: 40e9,
			DiskThreshold: 0.9, CPUBusy: 0.3, Connections: 40,
			Containers: []fleetsim.ContainerSpec{
				{Name: "web", Image: "web:1", ApplicationID: "11", Managed: true, Role: "app", CPULimitCores: 1.5, MemoryLimitBytes: 512 * mib, CPUUsageCores: 0.2, MemoryWorkingSetBytes: 100 * mib},
				{Name: "worker", Image: "worker:1", ApplicationID: "12", Managed: true, Role: "app", CPUUsageCores: 0.1, MemoryWorkingSetBytes: 50 * mib},
				{Name: "old", Image: "web:0", ApplicationID: "11", Managed: true, Role: "app", State: "exited", CPULimitCores: 4, MemoryLimitBytes: 4 * gib},
				{Name: "coolify-proxy", Image: "traefik:3", Role: "infra", CPUUsageCores: 0.01, MemoryWorkingSetBytes: 30 * mib},
			},
		},
		{
			Name: "app-2", Role: "app", Organization: "acme", Cores: 2,
			MemoryBytes: 4 * gib, MemoryUsedBytes: 1 * gib, DiskBytes: 50e9, DiskUsedBytes: 10e9,
			CPUBusy: 0.1, Connections: 10,
			Containers: []fleetsim.ContainerSpec{
				{Name: "web", Image: "web:1", ApplicationID: "11", Managed: true, Role: "app", CPULimitCores: 0.5, MemoryLimitBytes: 256 * mib, CPUUsageCores: 0.05, MemoryWorkingSetBytes: 60 * mib},
			},
		},
		{
			Name: "build-1", Role: "build", Cores: 8, MemoryBytes: 16 * gib, MemoryUsedBytes: 4 * gib,
			DiskBytes: 200e9, DiskUsedBytes: 50e9, CPUBusy: 0.5, Connections: 5,
			Containers: []fleetsim.ContainerSpec{
				{Name: "abcdefghij0123456789abcd", Image: "ghcr.io/coollabsio/coolify-helper:1", Role: "build", CPUUsageCores: 1, MemoryWorkingSetBytes: 800 * mib},
			},
		},
	}}
}

// rateWindows shrinks the shipped rules' 5m/15m windows for a test that
// scrapes every second and cannot wait 15 minutes: rate() over a window that
// holds a few seconds of data reads far too low until the window has filled.
// The expressions are otherwise exactly the shipped ones.
var rateWindows = strings.NewReplacer("[5m]", "[10s]", "[15m]", "[30s]")

// filledWindow is how long the shrunk windows need to hold enough samples.
const filledWindow = 12 * time.Second

// shippedRulesDir writes rules.Files, windows shrunk, to a directory that
// Prometheus (real or embedded) loads.
func shippedRulesDir(t *testing.T) string {
	dir := t.TempDir()
	if err := berthrules.WriteTo(dir, rateWindows.Replace); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitSnapshot polls until every server of the fleet reports every signal.
func waitSnapshot(t *testing.T, s *Snapshotter, spec fleetsim.Spec, what string) *placement.Snapshot {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		snap, err := s.Snapshot(context.Background())
		if err != nil {
			last = err.Error()
		} else {
			complete := len(snap.Servers) == len(spec.Servers) && len(snap.Organizations) > 0
			for _, st := range snap.Servers {
				if len(st.Missing) > 0 || st.CPU.Utilisation == 0 || st.Containers.UsedCPUCores == 0 {
					complete = false
					last = fmt.Sprintf("server %s missing %v", st.Name, st.Missing)
				}
			}
			if complete {
				return snap
			}
			if len(snap.Servers) != len(spec.Servers) {
				last = fmt.Sprintf("%d servers of %d", len(snap.Servers), len(spec.Servers))
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: fleet snapshot never complete: %s", what, last)
	return nil
}

// checkSnapshot compares a snapshot with what the fleet spec implies.
func checkSnapshot(t *testing.T, what string, snap *placement.Snapshot, spec fleetsim.Spec) {
	t.Helper()
	for _, want := range spec.Servers {
		st := snap.Servers[want.Name]
		if st == nil {
			t.Errorf("%s: server %s absent", what, want.Name)
			continue
		}
		threshold := want.DiskThreshold
		if threshold == 0 {
			threshold = fleetsim.DefaultDiskThreshold
		}
		exact := []struct {
			name      string
			got, want float64
		}{
			{"cores", st.CPU.Cores, float64(want.Cores)},
			{"memory total", st.Memory.TotalBytes, want.MemoryBytes},
			{"disk size", st.Disk.SizeBytes, want.DiskBytes},
			{"disk available", st.Disk.AvailableBytes, want.DiskBytes - want.DiskUsedBytes},
			{"disk threshold", st.Disk.ThresholdRatio, threshold},
		}
		var running, unlimitedCPU, unlimitedMem, builds int
		var limitCPU, limitMem float64
		for _, c := range want.Containers {
			if c.State == "exited" {
				continue
			}
			running++
			limitCPU += c.CPULimitCores
			limitMem += c.MemoryLimitBytes
			if c.CPULimitCores == 0 {
				unlimitedCPU++
			}
			if c.MemoryLimitBytes == 0 {
				unlimitedMem++
			}
			if c.Role == "build" {
				builds++
			}
		}
		exact = append(exact, []struct {
			name      string
			got, want float64
		}{
			{"running containers", float64(st.Containers.Running), float64(running)},
			{"limited cpu", st.Containers.LimitedCPUCores, limitCPU},
			{"limited memory", st.Containers.LimitedMemoryBytes, limitMem},
			{"unlimited cpu", float64(st.Containers.UnlimitedCPU), float64(unlimitedCPU)},
			{"unlimited memory", float64(st.Containers.UnlimitedMemory), float64(unlimitedMem)},
			{"builds active", float64(st.Containers.BuildsActive), float64(builds)},
		}...)
		for _, c := range exact {
			if math.Abs(c.got-c.want) > 1e-9*math.Max(1, c.want) {
				t.Errorf("%s: %s %s = %v, want %v", what, want.Name, c.name, c.got, c.want)
			}
		}
		if st.Role != want.Role || st.Organization != want.Organization {
			t.Errorf("%s: %s identity %s/%s, want %s/%s", what, want.Name, st.Role, st.Organization, want.Role, want.Organization)
		}
		// Varying values: the simulation swings ±15 % around the spec.
		if u := st.CPU.Utilisation; u < want.CPUBusy*0.8 || u > want.CPUBusy*1.2 {
			t.Errorf("%s: %s cpu utilisation %v, want about %v", what, want.Name, u, want.CPUBusy)
		}
		if st.CPU.PeakUtilisation < st.CPU.Utilisation {
			t.Errorf("%s: %s cpu peak %v below utilisation %v", what, want.Name, st.CPU.PeakUtilisation, st.CPU.Utilisation)
		}
		if used := st.Memory.TotalBytes - st.Memory.AvailableBytes; used < want.MemoryUsedBytes*0.84 || used > want.MemoryUsedBytes*1.16 {
			t.Errorf("%s: %s memory used %v, want about %v", what, want.Name, used, want.MemoryUsedBytes)
		}
		if st.Network.ReceiveBytesPerSecond <= 0 || st.Network.ReceiveBytesTotal <= 0 || st.Network.EstablishedConnections <= 0 {
			t.Errorf("%s: %s network %+v", what, want.Name, st.Network)
		}
		if st.LastSeen.IsZero() || st.LastSeen.After(snap.Taken) || st.Age != snap.Taken.Sub(st.LastSeen) {
			t.Errorf("%s: %s last seen %v, age %v, taken %v", what, want.Name, st.LastSeen, st.Age, snap.Taken)
		}
	}
	acme := snap.Organizations["acme"]
	if acme == nil {
		t.Fatalf("%s: organization acme absent: %v", what, snap.Organizations)
	}
	want := placement.OrganizationUsage{
		Name: "acme", Servers: 2, Applications: 2,
		LimitedCPUCores: 2, LimitedMemoryBytes: 768 * mib,
		UnlimitedCPU: 1, UnlimitedMemory: 1, ApplicationIDs: []string{"11", "12"},
	}
	if fmt.Sprint(*acme) != fmt.Sprint(want) {
		t.Errorf("%s: acme usage %+v, want %+v", what, *acme, want)
	}
}

func writePromConfig(t *testing.T, fleet *fleetsim.Fleet, rulesDir string) string {
	dir := t.TempDir()
	sd := filepath.Join(dir, "fleet.json")
	if err := fleet.WriteFileSD(sd); err != nil {
		t.Fatal(err)
	}
	var ruleFiles []string
	if rulesDir != "" {
		ruleFiles = []string{filepath.Join(rulesDir, "*.rules.yml")}
	}
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(fleetsim.ScrapeConfig("fleet", sd, time.Second, ruleFiles...)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestIntegrationEmbeddedAndRemote(t *testing.T) {
	prometheusBin := testenv.LookPath(t, "prometheus", "prometheus")
	logger := testenv.Logger(t)
	spec := testFleet()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fleet, err := fleetsim.Start(ctx, spec, fleetsim.ListenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()

	// Debian's Prometheus 2.42 with the shipped rules, scraping the fleet.
	rulesDir := shippedRulesDir(t)
	promCfg := writePromConfig(t, fleet, rulesDir)
	promAddr := testenv.FreePort(t)
	promProc := testenv.Start(t, prometheusBin, "--config.file="+promCfg, "--storage.tsdb.path="+t.TempDir(),
		"--web.listen-address="+promAddr, "--log.level=warn")
	testenv.WaitHTTP(t, "http://"+promAddr+"/-/ready", 30*time.Second)

	// The embedded stack over the same fleet and rules, given by
	// --rules.file (TestIntegrationEmbeddedShippedRules covers the default).
	storage := t.TempDir()
	embeddedReg := prometheus.NewRegistry()
	src, err := Open(Config{
		Embedded: embedded.Config{
			StoragePath: storage, ConfigFile: writePromConfig(t, fleet, ""),
			RuleFiles: []string{filepath.Join(rulesDir, "*.rules.yml")},
		},
		SnapshotTTL: 200 * time.Millisecond,
	}, logger, embeddedReg)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.Mode() != "embedded" {
		t.Fatalf("mode %s", src.Mode())
	}

	remoteReg := prometheus.NewRegistry()
	remote, err := Open(Config{PrometheusURL: "http://" + promAddr, SnapshotTTL: 200 * time.Millisecond}, logger, remoteReg)
	if err != nil {
		t.Fatal(err)
	}
	if remote.Mode() != "remote" || remote.PrometheusAPI("/prometheus") != nil {
		t.Fatalf("remote source: mode %s", remote.Mode())
	}

	// Both have all signals from their second scrape on; the rate windows
	// fill from there.
	waitSnapshot(t, src.Snapshots, spec, "embedded")
	waitSnapshot(t, remote.Snapshots, spec, "remote")
	time.Sleep(filledWindow)
	embSnap := waitSnapshot(t, src.Snapshots, spec, "embedded")
	remSnap := waitSnapshot(t, remote.Snapshots, spec, "remote")
	beforeStale := time.Now()

	t.Run("EmbeddedSnapshot", func(t *testing.T) { checkSnapshot(t, "embedded", embSnap, spec) })
	t.Run("RemoteSnapshot", func(t *testing.T) { checkSnapshot(t, "remote", remSnap, spec) })
	t.Run("SameAnswer", func(t *testing.T) {
		embSnap, err := src.Snapshots.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		remSnap, err := remote.Snapshots.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for name, e := range embSnap.Servers {
			r := remSnap.Servers[name]
			if r == nil {
				t.Errorf("server %s only in embedded", name)
				continue
			}
			close := func(field string, a, b, tol float64) {
				if math.Abs(a-b) > tol*math.Max(math.Abs(a), 1) {
					t.Errorf("%s %s: embedded %v, remote %v", name, field, a, b)
				}
			}
			close("cores", e.CPU.Cores, r.CPU.Cores, 0)
			close("memory total", e.Memory.TotalBytes, r.Memory.TotalBytes, 0)
			close("memory available", e.Memory.AvailableBytes, r.Memory.AvailableBytes, 0.1)
			close("cpu utilisation", e.CPU.Utilisation, r.CPU.Utilisation, 0.15)
			close("disk available", e.Disk.AvailableBytes, r.Disk.AvailableBytes, 0)
			close("limited memory", e.Containers.LimitedMemoryBytes, r.Containers.LimitedMemoryBytes, 0)
			close("limited cpu", e.Containers.LimitedCPUCores, r.Containers.LimitedCPUCores, 0)
			if !slices.Equal(e.Missing, r.Missing) {
				t.Errorf("%s missing: embedded %v, remote %v", name, e.Missing, r.Missing)
			}
		}
	})

	t.Run("SameDecisions", func(t *testing.T) { sameDecisions(t, ctx, src.Snapshots, remote.Snapshots, spec) })

	t.Run("QueriesPerSnapshot", func(t *testing.T) {
		// Many concurrent requests share one fetch of QueriesPerSnapshot
		// queries; the fleet size does not enter.
		q0, f0 := src.Snapshots.Queries(), src.Snapshots.Fetches()
		time.Sleep(450 * time.Millisecond) // past 2×TTL: callers wait for a fetch
		errs := make(chan error, 50)
		for range 50 {
			go func() { _, err := src.Snapshots.Snapshot(ctx); errs <- err }()
		}
		for range 50 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		fetches := src.Snapshots.Fetches() - f0
		queries := src.Snapshots.Queries() - q0
		if fetches < 1 || fetches >= 50 || queries != QueriesPerSnapshot*fetches {
			t.Errorf("50 concurrent snapshots: %d fetches, %d queries", fetches, queries)
		}
		if got := gaugeValue(t, embeddedReg, "berth_placement_source_up"); got != 1 {
			t.Errorf("berth_placement_source_up = %v", got)
		}
	})

	t.Run("PrometheusAPI", func(t *testing.T) { testPrometheusAPI(t, src.PrometheusAPI("/prometheus")) })

	t.Run("ObservedDeploymentReleasesReservation", func(t *testing.T) {
		observedRelease(t, ctx, src.Snapshots, fleet.Server("app-2"))
	})

	t.Run("StaleServerAges", func(t *testing.T) {
		// Earlier subtests added and removed a container on app-2: both
		// sources must see it back to its spec (one container of
		// application 11) before it goes silent.
		before := map[string]*placement.Snapshot{}
		for deadline := time.Now().Add(30 * time.Second); ; {
			settled := true
			for _, s := range []*Source{src, remote} {
				if before[s.Mode()], err = s.Snapshots.Snapshot(ctx); err != nil {
					t.Fatal(err)
				}
				st := before[s.Mode()].Servers["app-2"]
				settled = settled && st.Containers.Running == 1 && fmt.Sprint(st.Applications) == "map[11:1]"
			}
			if settled {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("app-2 never came back to its spec")
			}
			time.Sleep(300 * time.Millisecond)
		}
		// Last-known values are what the rules held at the server's last
		// sample, so at most one rule evaluation (1s here) behind it: let
		// a few pass before it goes silent.
		time.Sleep(3 * time.Second)
		stale := fleet.Server("app-2")
		stale.SetAnswering(false)
		defer stale.SetAnswering(true)
		for _, s := range []*Source{src, remote} {
			var snap *placement.Snapshot
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				snap, err = s.Snapshots.Snapshot(ctx)
				if err != nil {
					t.Fatal(err)
				}
				st := snap.Servers["app-2"]
				if st != nil && st.Age > snap.Servers["app-1"].Age+3*time.Second && slices.Contains(st.Missing, "server:node_cpus:count") &&
					st.ContainerUsage == placement.LastKnown {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			st := snap.Servers["app-2"]
			if st == nil {
				t.Fatalf("%s: stale server vanished from the snapshot", s.Mode())
			}
			if !(st.Age > snap.Servers["app-1"].Age+3*time.Second) || !slices.Contains(st.Missing, "server:node_cpus:count") {
				t.Errorf("%s: stale server age %v (fresh: %v), missing %v", s.Mode(), st.Age, snap.Servers["app-1"].Age, st.Missing)
			}
			if st.Role != "app" || st.Organization != "acme" {
				t.Errorf("%s: stale server lost its identity: %+v", s.Mode(), st)
			}
			// Seconds after it went silent its age is still within the
			// default freshness window, yet it already reads stale.
			if def := policy.Default(); !st.Silent || (st.Age < def.Freshness.Fresh && fit.FreshnessOf(def, st) != placement.Stale) {
				t.Errorf("%s: silent server (age %v): Silent %v, freshness %s; want silent and stale", s.Mode(), st.Age, st.Silent, fit.FreshnessOf(def, st))
			}
			if app1 := snap.Servers["app-1"]; app1 == nil || app1.Silent || app1.ContainerUsage != placement.Current {
				t.Errorf("%s: answering server marked silent or not current: %+v", s.Mode(), app1)
			}
			// Its containers still run: it keeps its last-known figures,
			// and its organization's usage does not drop.
			was := before[s.Mode()].Servers["app-2"]
			wasC, isC := was.Containers, st.Containers
			wasC.UsedCPUCores, wasC.WorkingSetBytes, isC.UsedCPUCores, isC.WorkingSetBytes = 0, 0, 0, 0 // they move
			if st.ContainerUsage != placement.LastKnown || isC != wasC || wasC.Managed.LimitedCPUCores != 0.5 ||
				st.CPU.Cores != 2 || fmt.Sprint(st.Applications) != "map[11:1]" ||
				!slices.Contains(st.LastKnown, "server:node_cpus:count") {
				t.Errorf("%s: silent server's last-known figures: usage %s, containers %+v (before %+v), cores %v, applications %v (before %v), last known %v",
					s.Mode(), st.ContainerUsage, st.Containers, was.Containers, st.CPU.Cores, st.Applications, was.Applications, st.LastKnown)
			}
			want := *before[s.Mode()].Organizations["acme"]
			want.LastKnownServers = []string{"app-2"}
			if acme := snap.Organizations["acme"]; acme == nil || fmt.Sprint(*acme) != fmt.Sprint(want) {
				t.Errorf("%s: acme usage with app-2 silent: %+v, want %+v", s.Mode(), acme, want)
			}
			staleReason(t, ctx, s.Mode(), s.Snapshots)
		}
	})

	t.Run("RemoteUnreachable", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		down, err := Open(Config{PrometheusURL: "http://" + testenv.FreePort(t), RemoteTimeout: 2 * time.Second}, logger, reg)
		if err != nil {
			t.Fatal(err)
		}
		if snap, err := down.Snapshots.Snapshot(ctx); err == nil {
			t.Fatalf("unreachable Prometheus gave a snapshot: %+v", snap)
		}
		if err := down.Ready(ctx); err == nil {
			t.Error("unreachable Prometheus is ready")
		}
		if got := gaugeValue(t, reg, "berth_placement_source_up"); got != 0 {
			t.Errorf("berth_placement_source_up = %v, want 0", got)
		}
	})

	t.Run("RemotePrometheusStopped", func(t *testing.T) {
		// A good snapshot first, then Prometheus dies: once the cached
		// snapshot is past its TTL the next call fails (the API answers
		// 503) instead of handing out the old one.
		if _, err := remote.Snapshots.Snapshot(ctx); err != nil {
			t.Fatalf("remote snapshot before the kill: %v", err)
		}
		if got := gaugeValue(t, remoteReg, "berth_placement_source_up"); got != 1 {
			t.Fatalf("berth_placement_source_up before the kill = %v, want 1", got)
		}
		if err := promProc.Cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		promProc.Stop() // reaps it
		// Past 2×TTL: no cached snapshot may answer.
		time.Sleep(2*200*time.Millisecond + 100*time.Millisecond)
		snap, err := remote.Snapshots.Snapshot(ctx)
		if err == nil || snap != nil {
			t.Fatalf("Prometheus killed: snapshot %v, error %v; want an error", snap, err)
		}
		t.Logf("Prometheus killed: %v", err)
		if got := gaugeValue(t, remoteReg, "berth_placement_source_up"); got != 0 {
			t.Errorf("berth_placement_source_up after the kill = %v, want 0", got)
		}
		// And it stays refused: no retry hands out the last good one.
		if snap, err := remote.Snapshots.Snapshot(ctx); err == nil {
			t.Errorf("second call after the kill: snapshot %v", snap)
		}
	})

	t.Run("SurvivesRestart", func(t *testing.T) {
		if err := src.Close(); err != nil {
			t.Fatal(err)
		}
		// Reopen on the same directory, scraping nothing: every sample
		// below comes from disk.
		empty := filepath.Join(t.TempDir(), "empty.yml")
		if err := os.WriteFile(empty, []byte("scrape_configs: []\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		again, err := embedded.New(embedded.Config{StoragePath: storage, ConfigFile: empty}, logger, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		defer again.Stop()
		v, err := again.Query(ctx, `count(berth_server_info) + count(server:node_cpus:count)`, beforeStale)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != 1 || v[0].Value != 6 {
			t.Errorf("after restart: %v, want 6 (3 raw + 3 recorded series)", v)
		}
	})
}

func gaugeValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// testPrometheusAPI uses client_golang's API client, as Grafana or any
// Prometheus tool would, against the embedded stack's handler.
func testPrometheusAPI(t *testing.T, h http.Handler) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	client, err := api.NewClient(api.Config{Address: srv.URL + "/prometheus"})
	if err != nil {
		t.Fatal(err)
	}
	prom := v1.NewAPI(client)
	ctx := context.Background()
	now := time.Now()

	v, _, _, err := prom.Query(ctx, `server:node_cpus:count`, now)
	if err != nil {
		t.Fatal(err)
	}
	cores := map[string]float64{}
	for _, s := range v.(model.Vector) {
		cores[string(s.Metric["server"])] = float64(s.Value)
	}
	if fmt.Sprint(cores) != fmt.Sprint(map[string]float64{"app-1": 4, "app-2": 2, "build-1": 8}) {
		t.Errorf("query: %v", v)
	}
	if s, _, _, err := prom.Query(ctx, `1 + 1`, now); err != nil || s.Type() != model.ValScalar || s.(*model.Scalar).Value != 2 {
		t.Errorf("scalar query: %v, %v", s, err)
	}

	m, _, _, err := prom.QueryRange(ctx, `server:node_memory_total:bytes{server="app-1"}`, v1.Range{Start: now.Add(-3 * time.Second), End: now, Step: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	matrix := m.(model.Matrix)
	if len(matrix) != 1 || len(matrix[0].Values) < 2 || matrix[0].Values[0].Value != 8*gib {
		t.Errorf("query_range: %v", m)
	}

	values, _, _, err := prom.LabelValues(ctx, "server", []string{"berth_server_info"}, now.Add(-time.Hour), now)
	if err != nil || fmt.Sprint(values) != "[app-1 app-2 build-1]" {
		t.Errorf("label values: %v, %v", values, err)
	}
	names, _, _, err := prom.LabelNames(ctx, []string{"berth_server_info"}, now.Add(-time.Hour), now)
	if err != nil || !slices.Contains(names, "organization") || !slices.Contains(names, "instance") {
		t.Errorf("label names: %v, %v", names, err)
	}
	series, _, _, err := prom.Series(ctx, []string{`berth_server_info{role="build"}`}, now.Add(-time.Hour), now)
	if err != nil || len(series) != 1 || series[0]["server"] != "build-1" {
		t.Errorf("series: %v, %v", series, err)
	}
	info, err := prom.Buildinfo(ctx)
	if err != nil || !strings.HasPrefix(info.Version, "3.") {
		t.Errorf("buildinfo: %+v, %v", info, err)
	}

	_, _, _, err = prom.Query(ctx, `sum(`, now)
	var apiErr *v1.Error
	if !errors.As(err, &apiErr) || apiErr.Type != v1.ErrBadData {
		t.Errorf("bad query error = %#v, want bad_data", err)
	}
	_, _, _, err = prom.QueryRange(ctx, `up`, v1.Range{Start: now, End: now.Add(-time.Minute), Step: time.Second})
	if !errors.As(err, &apiErr) || apiErr.Type != v1.ErrBadData {
		t.Errorf("end before start error = %#v, want bad_data", err)
	}

	// Raw HTTP, as Grafana sends it, and the error answers.
	raw := []struct {
		method, path, form string
		status             int
		contains           string
	}{
		{"POST", "/prometheus/api/v1/query", "query=1%2B1", 200, `"resultType":"scalar"`},
		{"GET", "/prometheus/api/v1/status/buildinfo", "", 200, `"version":"3.`},
		{"GET", "/prometheus/api/v1/query_exemplars?query=up", "", 200, `"data":[]`},
		{"PUT", "/prometheus/api/v1/query", "", 405, `"errorType":"bad_data"`},
		{"GET", "/prometheus/api/v1/series", "", 400, "no match[] parameter"},
		{"GET", "/prometheus/api/v1/query_range?query=up&start=0&end=100000&step=1", "", 400, "maximum resolution"},
		{"GET", "/prometheus/api/v1/query?query=up&time=yesterday", "", 400, `invalid parameter \"time\"`},
		{"GET", "/prometheus/api/v1/query?query=up&timeout=soon", "", 400, `invalid parameter \"timeout\"`},
		{"GET", "/prometheus/api/v1/nope", "", 404, ""},
	}
	for _, r := range raw {
		req, _ := http.NewRequest(r.method, srv.URL+r.path, strings.NewReader(r.form))
		if r.form != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != r.status || !strings.Contains(string(body), r.contains) {
			t.Errorf("%s %s: %d %s; want %d containing %s", r.method, r.path, resp.StatusCode, body, r.status, r.contains)
		}
	}
}

// TestIntegrationEmbeddedShippedRules checks that the default embedded
// stack evaluates the rules compiled into the binary.
func TestIntegrationEmbeddedShippedRules(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, err := embedded.New(embedded.Config{StoragePath: t.TempDir(), SelfAddress: testenv.FreePort(t), ExporterAddress: testenv.FreePort(t)}, testenv.Logger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]bool{}
	for _, f := range families {
		if f.GetName() == "prometheus_rule_group_rules" {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "rule_group" {
						groups[filepath.Base(l.GetValue())] = true
					}
				}
			}
		}
	}
	shipped, _ := fs.Glob(berthrules.Files, "*.rules.yml")
	for _, file := range shipped {
		found := false
		for g := range groups {
			found = found || strings.HasPrefix(g, file+";")
		}
		if !found {
			t.Errorf("shipped rule file %s not loaded; groups: %v", file, groups)
		}
	}
	if err := e.Ready(context.Background()); err != nil {
		t.Errorf("ready: %v", err)
	}
}

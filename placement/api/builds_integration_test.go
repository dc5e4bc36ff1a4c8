package api

import (
	"github.com/berth-dev/berth/placement/build"
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/reservation"
	"github.com/berth-dev/berth/placement/schedule"

	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-dev/berth/internal/fleetsim"
	"github.com/berth-dev/berth/internal/podmantest"
	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/embedded"
	"github.com/berth-dev/berth/placement/promsource"
	berthrules "github.com/berth-dev/berth/rules"
)

// liveBuildPolicy: a server silent for 5s is stale (tests cannot wait a
// minute), otherwise the defaults (cap 2, the seed's weights).
const liveBuildPolicy = "freshness: {fresh: 5s, stale: 10m}\n"

// shrunkRules writes the shipped rules with their 5m/15m windows shrunk to
// 10s/30s: with a 1s scrape interval rate() over a window holding a few
// seconds of data reads far too low until the window fills.
func shrunkRules(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := berthrules.WriteTo(dir, strings.NewReplacer("[5m]", "[10s]", "[15m]", "[30s]").Replace); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "*.rules.yml")
}

// liveBuildAPI serves the API over an embedded Prometheus scraping
// targets (every second) with the shipped rules.
type liveBuildAPI struct {
	*testEnv
	src *promsource.Source
}

func startLiveBuildAPI(t *testing.T, targets []string) *liveBuildAPI {
	t.Helper()
	dir := t.TempDir()
	sd := filepath.Join(dir, "targets.json")
	var groups []map[string]any
	for _, tg := range targets {
		groups = append(groups, map[string]any{"targets": []string{tg}})
	}
	b, _ := json.Marshal(groups)
	if err := os.WriteFile(sd, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fleetsim.ScrapeConfig("fleet", sd, time.Second)), 0o644); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	src, err := promsource.Open(promsource.Config{
		Embedded:    embedded.Config{StoragePath: filepath.Join(dir, "tsdb"), ConfigFile: cfg, RuleFiles: []string{shrunkRules(t)}},
		SnapshotTTL: 200 * time.Millisecond,
	}, logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })

	pol, err := policy.Parse([]byte(liveBuildPolicy))
	if err != nil {
		t.Fatal(err)
	}
	policies := policy.NewStaticStore(pol)
	store, err := reservation.Open(filepath.Join(dir, "data"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	records, err := build.OpenRecords(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	a, err := New(Options{
		Logger: logger, Snapshots: src.Snapshots, Policy: policies, Placer: schedule.NewPlacer(policies, store),
		Registerer: reg, Gatherer: reg,
		Builds: &BuildsConfig{Records: records, History: promsource.NewBuildHistory(src.Querier, 5*time.Second, 0)},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(checkAnswers(t, a))
	t.Cleanup(srv.Close)
	return &liveBuildAPI{testEnv: &testEnv{t: t, url: srv.URL, api: a, reg: reg}, src: src}
}

// waitBuildServers polls GET /build-servers until ok holds.
func (l *liveBuildAPI) waitBuildServers(what string, ok func(map[string]build.Load) bool) map[string]build.Load {
	l.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last []byte
	for time.Now().Before(deadline) {
		status, b, _ := l.do("GET", "/api/v1/build-servers", "")
		last = b
		var list BuildServerList
		if status == 200 && json.Unmarshal(b, &list) == nil {
			m := map[string]build.Load{}
			for _, s := range list.Servers {
				m[s.Server] = s
			}
			if ok(m) {
				return m
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	l.t.Fatalf("build servers never %s; last answer: %s", what, last)
	return nil
}

func (l *liveBuildAPI) place(body string) BuildPlacementResponse {
	l.t.Helper()
	var out BuildPlacementResponse
	l.json("POST", "/api/v1/builds/placements", body, 200, &out)
	return out
}

func TestIntegrationBuildsFleetsim(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	const gib = 1 << 30
	buildServer := func(name string, cpu, mem float64, builds int) fleetsim.ServerSpec {
		s := fleetsim.ServerSpec{Name: name, Role: "build", Cores: 8, MemoryBytes: 16 * gib, MemoryUsedBytes: mem * 16 * gib,
			DiskBytes: 200 * gib, DiskUsedBytes: 50 * gib, CPUBusy: cpu, Connections: 3}
		for i := range builds {
			s.Containers = append(s.Containers, fleetsim.ContainerSpec{Name: fmt.Sprintf("abcdefghij0123456789abc%d", i),
				Image: "ghcr.io/coollabsio/coolify-helper:1.0.15", Role: "build", CPUUsageCores: 1, MemoryWorkingSetBytes: 500 << 20})
		}
		return s
	}
	spec := fleetsim.Spec{Seed: 7, Servers: []fleetsim.ServerSpec{
		// Load scores about 0.4×70 + 0.3×40 = 40, 0.4×10 + 0.3×10 = 7,
		// 0.4×40 + 0.3×30 + 15 (a running build) = 40.
		buildServer("build-a", 0.70, 0.40, 0),
		buildServer("build-b", 0.10, 0.10, 0),
		buildServer("build-c", 0.40, 0.30, 1),
		{Name: "app-1", Role: "app", Cores: 4, MemoryBytes: 8 * gib, MemoryUsedBytes: 1 * gib, DiskBytes: 100 * gib, DiskUsedBytes: 10 * gib, CPUBusy: 0.05},
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fleet, err := fleetsim.Start(ctx, spec, fleetsim.ListenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	l := startLiveBuildAPI(t, fleet.Targets())

	// Fresh, with the rate windows filled (CPU near the spec).
	l.waitBuildServers("fresh with their CPU load", func(m map[string]build.Load) bool {
		return len(m) == 3 && m["build-a"].Freshness == placement.Fresh && m["build-b"].Freshness == placement.Fresh &&
			m["build-c"].Freshness == placement.Fresh && m["build-a"].CPUPercent > 55 && m["build-c"].CPUPercent > 30 &&
			m["build-c"].ActiveInMetrics == 1
	})

	t.Run("LeastLoadedChosen", func(t *testing.T) {
		for range 5 {
			d := l.place(`{"build_pack":"nixpacks"}`)
			if d.Chosen != "build-b" || d.Outcome != build.Placed || d.Considered != 3 {
				t.Fatalf("chose %q: %+v", d.Chosen, d)
			}
			if d.Ranking[0].Score >= d.Ranking[1].Score {
				t.Errorf("ranking not by load: %+v", d.Ranking)
			}
		}
	})

	var placedIDs []string
	t.Run("ConcurrentPlacementsRespectCaps", func(t *testing.T) {
		// Slots: 2 + 2 + 1 (build-c runs a build) = 5.
		const n = 10
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			outs []BuildPlacementResponse
		)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, b, _ := l.do("POST", "/api/v1/builds/placements", fmt.Sprintf(`{"application_id":"app-%d","reserve":true,"idempotency_key":"k-%d"}`, i, i))
				var out BuildPlacementResponse
				if status != 200 || json.Unmarshal(b, &out) != nil {
					t.Errorf("placement %d: %d %s", i, status, b)
					return
				}
				mu.Lock()
				outs = append(outs, out)
				mu.Unlock()
			}()
		}
		wg.Wait()
		perServer := map[string]int{}
		full := 0
		for _, o := range outs {
			switch {
			case o.Placed && o.Reservation != nil && o.Reservation.State == placement.StateQueued:
				perServer[o.Chosen]++
				placedIDs = append(placedIDs, o.Reservation.ID)
			case o.Outcome == build.Full && o.Wait != nil && o.Wait.Seconds >= 0 && o.Reservation == nil:
				full++
			default:
				t.Errorf("unexpected answer %+v", o)
			}
		}
		if perServer["build-a"] != 2 || perServer["build-b"] != 2 || perServer["build-c"] != 1 || full != n-5 {
			t.Errorf("placed %v, %d told to wait; want 2/2/1 and 5", perServer, full)
		}
		loads := l.waitBuildServers("showing the reservations", func(m map[string]build.Load) bool { return true })
		for name, ld := range loads {
			if ld.ActiveBuilds+ld.QueuedBuilds > ld.ConcurrentBuilds {
				t.Errorf("%s above its cap: %+v", name, ld)
			}
		}
		if got := metricValue(t, l.reg, "berth_build_queue_length", map[string]string{"server": "build-a"}); got != 2 {
			t.Errorf("berth_build_queue_length{server=build-a} = %v", got)
		}
	})

	t.Run("StartAndFinishMoveCounts", func(t *testing.T) {
		var onB string
		for _, id := range placedIDs {
			var r placement.Reservation
			for _, res := range l.api.opts.Placer.Store().List() {
				if res.ID == id {
					r = res
				}
			}
			if r.Server == "build-b" {
				onB = id
			}
		}
		if onB == "" {
			t.Fatal("no reservation on build-b")
		}
		get := func() build.Load {
			var ld build.Load
			l.json("GET", "/api/v1/build-servers/build-b", "", 200, &ld)
			return ld
		}
		before := get()
		l.json("POST", "/api/v1/builds/"+onB+"/start", "", 200, nil)
		after := get()
		if after.QueuedBuilds != before.QueuedBuilds-1 || after.ActiveBuilds != before.ActiveBuilds+1 || after.Score <= before.Score {
			t.Errorf("start: before %+v, after %+v", before, after)
		}
		l.json("POST", "/api/v1/builds/"+onB+"/finish", "", 200, nil)
		done := get()
		if done.ActiveBuilds != before.ActiveBuilds || done.QueuedBuilds != before.QueuedBuilds-1 {
			t.Errorf("finish: before %+v, after %+v", before, done)
		}
		// Its slot is free again: the next build goes there.
		if d := l.place(`{}`); d.Chosen != "build-b" {
			t.Errorf("after finish: chose %q (%s)", d.Chosen, d.Summary)
		}
	})

	t.Run("StaleNeverChosen", func(t *testing.T) {
		for _, r := range l.api.opts.Placer.Store().List() {
			l.json("DELETE", "/api/v1/reservations/"+r.ID, "", 200, nil)
		}
		fleet.Server("build-b").SetAnswering(false)
		defer fleet.Server("build-b").SetAnswering(true)
		l.waitBuildServers("showing build-b stale", func(m map[string]build.Load) bool {
			return m["build-b"].Freshness != placement.Fresh
		})
		for i := range 6 {
			d := l.place(fmt.Sprintf(`{"reserve":true,"idempotency_key":"stale-%d"}`, i))
			if d.Chosen == "build-b" {
				t.Fatalf("stale build-b chosen: %+v", d)
			}
			var reasons []placement.Reason
			for _, r := range d.Rejected {
				if r.Server == "build-b" {
					reasons = r.Reasons
				}
			}
			if !slices.Contains(reasons, placement.ReasonMetricsStale) && !slices.Contains(reasons, placement.ReasonMetricsMissing) {
				t.Errorf("build-b rejected for %v: %s", reasons, d.Summary)
			}
		}
	})
}

// coolifyBuildID is a Coolify deployment id: 24 characters [a-z0-9].
const coolifyBuildID = "q7w8e9r0t1y2u3i4o5p6a7s8"

// TestIntegrationBuildsPodman: a real engine runs a container that looks
// like a Coolify build helper; berth-exporter (role build) sees it, the
// embedded Prometheus scrapes it, and the build-servers endpoint counts it
// as an active build. A second helper run between a build's start and
// finish becomes that application's history.
func TestIntegrationBuildsPodman(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	e := podmantest.Start(t)
	const helperImage = "docker.io/coollabsio/coolify-helper:1.0.15"
	e.Podman(t, "tag", podmantest.Image, helperImage)
	e.Run(t, "--name", coolifyBuildID, helperImage, "sleep", "100000")
	e.Run(t, "--name", "web", "--label", "coolify.managed=true", "--label", "coolify.type=application", podmantest.Image, "sleep", "100000")

	exporterAddr := testenv.FreePort(t)
	testenv.Start(t, testenv.Binary(t, "berth-exporter"), "--web.listen-address="+exporterAddr,
		"--server.name=builder", "--server.role=build", "--collector.containers.docker-host="+e.Host())
	testenv.WaitHTTP(t, "http://"+exporterAddr+"/metrics", 30*time.Second)

	l := startLiveBuildAPI(t, []string{exporterAddr})
	loads := l.waitBuildServers("counting the helper container", func(m map[string]build.Load) bool {
		return m["builder"].Freshness == placement.Fresh && m["builder"].ActiveInMetrics == 1
	})
	if b := loads["builder"]; b.ActiveBuilds != 1 || b.FreeSlots != 1 {
		t.Errorf("builder: %+v, want 1 active build of 2", b)
	}

	// A build of application app-7: reserved, started; its helper runs,
	// holding ~32 MiB, and ends; the build finishes.
	d := l.place(`{"application_id":"app-7","profile":"simple_static","reserve":true,"requirements":{"memory":"64m","disk":"10m"}}`)
	if !d.Placed || d.Chosen != "builder" {
		t.Fatalf("placement: %+v", d)
	}
	l.json("POST", "/api/v1/builds/"+d.Reservation.ID+"/start", "", 200, nil)
	const second = "z0x9c8v7b6n5m4l3k2j1h0g9"
	// dd's 32 MiB buffer, filled from /dev/zero over and over, stays in its
	// working set while it runs.
	e.Run(t, "--name", second, helperImage, "dd", "if=/dev/zero", "of=/dev/null", "bs=32M", "count=1000000")
	l.waitBuildServers("counting the second helper", func(m map[string]build.Load) bool {
		return m["builder"].ActiveInMetrics == 2
	})
	time.Sleep(3 * time.Second) // a few scrapes of the full working set
	e.Remove(t, second)
	var fin BuildFinishResponse
	l.json("POST", "/api/v1/builds/"+d.Reservation.ID+"/finish", "", 200, &fin)
	if !fin.HistoryRecorded {
		t.Fatalf("finish: %+v", fin)
	}

	var est build.Estimate
	l.json("POST", "/api/v1/builds/estimate", `{"application_id":"app-7","profile":"simple_static"}`, 200, &est)
	t.Logf("estimate from history: %+v", est)
	if est.Source != build.EstimateFromHistory || est.HistoryBuilds != 1 {
		t.Fatalf("estimate %+v, want from history of 1 build", est)
	}
	if est.Memory < 30<<20 || est.Memory > 512<<20 || est.DurationSeconds <= 0 {
		t.Errorf("history estimate %+v: want the helper's peak (~32 MiB) and the build's duration", est)
	}
	// Another application has no history.
	l.json("POST", "/api/v1/builds/estimate", `{"application_id":"app-8"}`, 200, &est)
	if est.Source != build.EstimateFromProfile {
		t.Errorf("app-8: %+v", est)
	}
}

package containers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-dev/berth/internal/enginetest"
)

// benchContainers is how many running containers the benchmark compares on.
const benchContainers = 100

// statsCalls is how many /containers/{id}/stats calls an iteration makes per
// engine. Podman answers one from a single cgroup read: all 100, as an
// agent polling every container would. dockerd takes about 2 s per call
// (two collection cycles for precpu_stats): a sample, rotating over the
// containers, keeps an iteration under 10 s; the ratio is per container.
var statsCalls = map[string]int{"podman": benchContainers, "docker": 4}

// BenchmarkContainers100 compares, per engine (dockerd and Podman), in the
// same run and on the same 100 running containers, one berth-exporter
// scrape (full /metrics over HTTP) with what other agents do: one
// /containers/{id}/stats?stream=false call per container, one after the
// other. Reported per iteration: scrape-ms (wall), collect-ms (the collector
// alone, without registry, encoding and HTTP), scrape-cpu-ms (exporter
// CPU), stats-api-ms and stats-api-cpu-ms (100 stats calls, wall and CPU of
// client and engine; on dockerd 100 times the mean of the sample), and
// per container scrape-ms/container and stats-ms/container. The ratios
// speedup-x (wall) and cpu-ratio-x are per container: one stats call
// against the container's share of one scrape.
//
// Run with: go test -run '^$' -bench Containers100 -benchtime 5x ./exporter/containers/
func BenchmarkContainers100(b *testing.B) {
	for _, eng := range engines {
		b.Run(eng.kind, func(b *testing.B) { benchEngine(b, eng.start(b)) })
	}
}

func benchEngine(b *testing.B, e enginetest.Engine) {
	started := time.Now()
	for i := 0; i < benchContainers; i++ {
		e.RunContainer(b, enginetest.Spec{Name: fmt.Sprintf("bench-%03d", i), Memory: 32 << 20, CPUs: 0.1,
			Labels: map[string]string{"coolify.managed": "true", "coolify.type": "application", "coolify.applicationId": strconv.Itoa(i)},
			Cmd:    []string{"sleep", "100000"}})
	}
	b.Logf("%s: started %d containers in %s", e.Kind(), benchContainers, time.Since(started).Round(time.Millisecond))
	ids := e.ContainerIDs(b)
	if len(ids) != benchContainers {
		b.Fatalf("%d containers, want %d", len(ids), benchContainers)
	}

	url, collector := startExporter(b, Config{DockerHost: e.Host()})
	first := waitFor(b, url, "every container in the cache", func(s scrape) bool {
		return len(s.find("container_memory_usage_bytes", nil)) == benchContainers
	})
	if v := first.value(b, "berth_scrape_collector_success", map[string]string{"collector": "containers"}); v != 1 {
		b.Fatalf("containers collector failing")
	}
	engine := e.HTTPClient()
	servicePIDs := e.ServicePIDs()

	// The collector alone, for profiling it (-cpuprofile, -benchmem)
	// without the HTTP, encoding and stats API work of the comparison.
	b.Run("collect", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if series := collectOnly(b, collector); series < benchContainers*15 {
				b.Fatalf("collector sent %d series for %d containers", series, benchContainers)
			}
		}
	})

	b.Run("scrape_vs_stats_api", func(b *testing.B) {
		var scrapeWall, collectWall, statsWall, scrapeCPU, statsCPU time.Duration
		calls, next := 0, 0
		for i := 0; i < b.N; i++ {
			t, series := time.Now(), collectOnly(b, collector)
			collectWall += time.Since(t)
			if series < benchContainers*15 {
				b.Fatalf("collector sent %d series for %d containers", series, benchContainers)
			}

			t0, c0 := time.Now(), selfCPU()
			if n := scrapeBytes(b, url); n == 0 {
				b.Fatal("empty scrape")
			}
			scrapeWall += time.Since(t0)
			scrapeCPU += selfCPU() - c0

			t1, c1 := time.Now(), selfCPU()+enginesCPU(b, servicePIDs)
			for range statsCalls[e.Kind()] {
				statsOnce(b, engine, ids[next%len(ids)])
				next++
				calls++
			}
			statsWall += time.Since(t1)
			statsCPU += selfCPU() + enginesCPU(b, servicePIDs) - c1
		}
		n, perContainer := float64(b.N), float64(b.N*benchContainers)
		ms := func(d time.Duration, per float64) float64 { return float64(d) / float64(time.Millisecond) / per }
		statsCall, statsCallCPU := ms(statsWall, float64(calls)), ms(statsCPU, float64(calls))
		b.ReportMetric(ms(scrapeWall, n), "scrape-ms")
		b.ReportMetric(ms(collectWall, n), "collect-ms")
		b.ReportMetric(ms(scrapeCPU, n), "scrape-cpu-ms")
		b.ReportMetric(statsCall*benchContainers, "stats-api-ms")
		b.ReportMetric(statsCallCPU*benchContainers, "stats-api-cpu-ms")
		b.ReportMetric(ms(scrapeWall, perContainer), "scrape-ms/container")
		b.ReportMetric(statsCall, "stats-ms/container")
		b.ReportMetric(statsCall/ms(scrapeWall, perContainer), "speedup-x")
		if scrapeCPU > 0 {
			b.ReportMetric(statsCallCPU/ms(scrapeCPU, perContainer), "cpu-ratio-x")
		}
	})
}

// collectOnly runs the collector alone (no registry, encoding or HTTP) and
// counts the series it sends.
func collectOnly(b *testing.B, c *Collector) int {
	ch := make(chan prometheus.Metric, 4096)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Update(ctx, ch); err != nil {
		b.Fatal(err)
	}
	return len(ch)
}

func scrapeBytes(b *testing.B, url string) int {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	return int(n)
}

// statsOnce fetches and decodes one container's stats, as Sentinel-like
// agents do for every container on every tick.
func statsOnce(b *testing.B, client *http.Client, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://engine/v1.41/containers/"+id+"/stats?stream=false", nil)
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var stats map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		b.Fatalf("decoding stats of %s: %v", id, err)
	}
	if _, ok := stats["memory_stats"]; !ok {
		b.Fatalf("stats of %s have no memory_stats", id)
	}
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// enginesCPU is the CPU time of the engine's processes.
func enginesCPU(b *testing.B, pids []int) time.Duration {
	var sum time.Duration
	for _, pid := range pids {
		sum += processCPU(b, pid)
	}
	return sum
}

// processCPU is another process's user+system CPU time from /proc/<pid>/stat.
func processCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields overall, in clock ticks (USER_HZ).
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseUint(fields[11], 10, 64)
	stime, _ := strconv.ParseUint(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

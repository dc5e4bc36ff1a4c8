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

	"github.com/berth-dev/berth/internal/podmantest"
)

// benchContainers is how many running containers the benchmark compares on.
const benchContainers = 100

// BenchmarkContainers100 compares, in the same run and on the same 100
// running Podman containers, one berth-exporter scrape (full /metrics over
// HTTP) with what other agents do: one /containers/{id}/stats?stream=false
// call per container, one after the other. Reported per iteration:
// scrape-ms and stats-api-ms (wall time), collect-ms (the collector alone,
// without registry, encoding and HTTP), scrape-cpu-ms and stats-api-cpu-ms
// (CPU time of the exporter; for the stats path also of the engine that
// answers), and speedup-x / cpu-ratio-x.
//
// Run with: go test -run '^$' -bench Containers100 -benchtime 5x ./exporter/containers/
func BenchmarkContainers100(b *testing.B) {
	e := podmantest.Start(b)
	started := time.Now()
	for i := 0; i < benchContainers; i++ {
		e.Run(b, "--name", fmt.Sprintf("bench-%03d", i), "--memory", "32m", "--cpus", "0.1",
			"--label", "coolify.managed=true", "--label", "coolify.type=application",
			"--label", "coolify.applicationId="+strconv.Itoa(i),
			podmantest.Image, "sleep", "100000")
	}
	b.Logf("started %d containers in %s", benchContainers, time.Since(started).Round(time.Millisecond))
	ids := strings.Fields(e.Podman(b, "ps", "-q", "--no-trunc"))
	if len(ids) != benchContainers {
		b.Fatalf("%d containers running, want %d", len(ids), benchContainers)
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
			for _, id := range ids {
				statsOnce(b, engine, id)
			}
			statsWall += time.Since(t1)
			statsCPU += selfCPU() + enginesCPU(b, servicePIDs) - c1
		}
		n := float64(b.N)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / n }
		b.ReportMetric(ms(scrapeWall), "scrape-ms")
		b.ReportMetric(ms(collectWall), "collect-ms")
		b.ReportMetric(ms(statsWall), "stats-api-ms")
		b.ReportMetric(float64(statsWall)/float64(scrapeWall), "speedup-x")
		b.ReportMetric(ms(scrapeCPU), "scrape-cpu-ms")
		b.ReportMetric(ms(statsCPU), "stats-api-cpu-ms")
		if scrapeCPU > 0 {
			b.ReportMetric(float64(statsCPU)/float64(scrapeCPU), "cpu-ratio-x")
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
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://podman/v1.41/containers/"+id+"/stats?stream=false", nil)
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

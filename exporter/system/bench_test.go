package system

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/exporter"
	"github.com/berth-dev/berth/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
)

// BenchmarkScrapeVsNodeExporter runs berth-exporter (system collectors only)
// and node_exporter 1.5 (the equivalent collectors only) side by side on
// this machine, scrapes them alternately b.N times over HTTP and reports,
// for each: wall time per scrape, CPU time per scrape (utime+stime of the
// exporter process from /proc/<pid>/stat: getrusage cannot see a child that
// is still running) and resident memory after the run, plus the ratios
// berth/node_exporter (≤ 1 means Berth is cheaper).
//
// CPU is counted in clock ticks (10 ms), so run enough scrapes:
//
//	go test ./exporter/system -run '^$' -bench ScrapeVsNodeExporter -benchtime 2000x
func BenchmarkScrapeVsNodeExporter(b *testing.B) {
	if _, err := exec.LookPath("prometheus-node-exporter"); err != nil {
		b.Skip("prometheus-node-exporter not installed (Debian package prometheus-node-exporter): nothing to compare with")
	}
	nodeURL, node := startNodeExporter(b)
	nodePID := node.Cmd.Process.Pid

	bin := testenv.Binary(b, "berth-exporter")
	addr := testenv.FreePort(b)
	args := []string{"--web.listen-address=" + addr, "--log.level=warn"}
	args = append(args, disableOtherCollectors(b, bin)...)
	berth := testenv.Start(b, bin, args...)
	berthURL := "http://" + addr + "/metrics"
	testenv.WaitHTTP(b, berthURL, 15*time.Second)

	client := &http.Client{Timeout: 15 * time.Second}
	// collectorSeconds sums the exporters' own per-collector durations
	// (node_scrape_collector_duration_seconds for node_exporter's
	// equivalent collectors, berth_scrape_collector_duration_seconds for
	// ours): the cost of the collectors alone, without HTTP, encoding and
	// the Go/process metrics both binaries add.
	var berthCollectorSeconds, nodeCollectorSeconds float64
	var body bytes.Buffer
	scrape := func(url string) time.Duration {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatalf("scraping %s: %v", url, err)
		}
		body.Reset()
		_, err = body.ReadFrom(resp.Body)
		resp.Body.Close()
		elapsed := time.Since(start)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("scraping %s: status %d, %v", url, resp.StatusCode, err)
		}
		if url == berthURL {
			berthCollectorSeconds += sumDurations(body.Bytes(), "berth_scrape_collector_duration_seconds{", collectorNames)
		} else {
			nodeCollectorSeconds += sumDurations(body.Bytes(), "node_scrape_collector_duration_seconds{", nodeExporterCollectors)
		}
		return elapsed
	}
	// Warm up: connections, caches, first-scrape allocations.
	for range 20 {
		scrape(nodeURL)
		scrape(berthURL)
	}

	berthCollectorSeconds, nodeCollectorSeconds = 0, 0
	berthCPU0, nodeCPU0 := cpuTicks(b, berth.Cmd.Process.Pid), cpuTicks(b, nodePID)
	var berthWall, nodeWall time.Duration
	b.ResetTimer()
	for range b.N {
		nodeWall += scrape(nodeURL)
		berthWall += scrape(berthURL)
	}
	b.StopTimer()
	berthCPU := cpuTicks(b, berth.Cmd.Process.Pid) - berthCPU0
	nodeCPU := cpuTicks(b, nodePID) - nodeCPU0
	berthRSS, nodeRSS := rssBytes(b, berth.Cmd.Process.Pid), rssBytes(b, nodePID)

	n := float64(b.N)
	const tick = 10 * time.Millisecond // USER_HZ
	b.ReportMetric(float64(berthWall.Microseconds())/n, "berth-µs/scrape")
	b.ReportMetric(float64(nodeWall.Microseconds())/n, "node-µs/scrape")
	b.ReportMetric(float64(berthWall)/float64(nodeWall), "wall-ratio")
	b.ReportMetric(float64(berthCPU)*float64(tick.Microseconds())/n, "berth-cpu-µs/scrape")
	b.ReportMetric(float64(nodeCPU)*float64(tick.Microseconds())/n, "node-cpu-µs/scrape")
	if nodeCPU > 0 {
		b.ReportMetric(float64(berthCPU)/float64(nodeCPU), "cpu-ratio")
	}
	b.ReportMetric(berthCollectorSeconds*1e6/n, "berth-collectors-µs/scrape")
	b.ReportMetric(nodeCollectorSeconds*1e6/n, "node-collectors-µs/scrape")
	b.ReportMetric(berthCollectorSeconds/nodeCollectorSeconds, "collectors-ratio")
	b.ReportMetric(float64(berthRSS)/(1<<20), "berth-rss-MiB")
	b.ReportMetric(float64(nodeRSS)/(1<<20), "node-rss-MiB")
	b.ReportMetric(float64(berthRSS)/float64(nodeRSS), "rss-ratio")
}

// BenchmarkSystemCollectors measures one in-process scrape of all system
// collectors on this host (no HTTP, no encoding), with CPU time from
// getrusage(RUSAGE_SELF).
func BenchmarkSystemCollectors(b *testing.B) {
	collectors := liveCollectors(b)
	scraper := exporter.NewScraper(collectors, discardLogger())
	scrapeOnce := func() {
		reg := prometheus.NewRegistry()
		reg.MustRegister(scraper.ForScrape(context.Background()))
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
	scrapeOnce()
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		scrapeOnce()
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/scrape")
}

// BenchmarkHandler measures one whole /metrics answer in-process as
// berth-exporter serves it: the system collectors through the scrape
// engine's handler, plus build info, Go and process metrics, text format,
// gzip. Profile it with -cpuprofile / -memprofile to see where a scrape's
// CPU and allocations go.
func BenchmarkHandler(b *testing.B) {
	static := prometheus.NewRegistry()
	static.MustRegister(
		versioncollector.NewCollector("berth_exporter"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	handler := exporter.NewHandler(exporter.NewScraper(liveCollectors(b), discardLogger()), static, discardLogger())
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
	serve := func() {
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	serve()
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		serve()
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/scrape")
}

// sumDurations adds the values of prefix{collector="<name>"} lines for the
// given collector names.
func sumDurations(exposition []byte, prefix string, names []string) float64 {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var sum float64
	for _, line := range bytes.Split(exposition, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte(prefix))
		if !ok {
			continue
		}
		labels, value, ok := bytes.Cut(rest, []byte("} "))
		name, ok2 := bytes.CutPrefix(labels, []byte(`collector="`))
		if !ok || !ok2 || !want[strings.TrimSuffix(string(name), `"`)] {
			continue
		}
		if v, err := strconv.ParseFloat(string(value), 64); err == nil {
			sum += v
		}
	}
	return sum
}

// disableOtherCollectors turns off every collector of berth-exporter that
// is not a system collector (identity, containers, and whatever comes
// later), found from its --help.
func disableOtherCollectors(b *testing.B, bin string) []string {
	out, _ := exec.Command(bin, "--help").CombinedOutput()
	ours := map[string]bool{}
	for _, n := range collectorNames {
		ours[n] = true
	}
	var args []string
	for _, m := range regexp.MustCompile(`--\[no-\]collector\.([a-z0-9_]+)\s`).FindAllStringSubmatch(string(out), -1) {
		if !ours[m[1]] {
			args = append(args, "--no-collector."+m[1])
		}
	}
	if len(args) == 0 {
		b.Logf("no non-system collectors found in %s --help", bin)
	}
	return args
}

// statFields are the fields of /proc/<pid>/stat after the command name:
// [0] state, … [11] utime, [12] stime.
func statFields(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(data)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

func cpuTicks(b *testing.B, pid int) int64 {
	f := statFields(pid)
	if len(f) < 13 {
		b.Fatalf("reading cpu time of pid %d", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func rssBytes(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	b.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

package exporter

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"log/slog"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
)

var testDesc = prometheus.NewDesc("berth_test_value", "A test value.", []string{"from"}, nil)

func sends(from string) Collector {
	return CollectorFunc(func(_ context.Context, ch chan<- prometheus.Metric) error {
		ch <- prometheus.MustNewConstMetric(testDesc, prometheus.GaugeValue, 1, from)
		return nil
	})
}

func scrape(t *testing.T, collectors map[string]Collector, timeoutHeader string) string {
	t.Helper()
	h := NewHandler(NewScraper(collectors, promslog.NewNopLogger()), prometheus.NewRegistry(), promslog.NewNopLogger())
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	if timeoutHeader != "" {
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeoutHeader)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape status %d: %s", resp.StatusCode, body)
	}
	return string(body)
}

func TestScrapeIsolatesFailures(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	collectors := map[string]Collector{
		"good": sends("good"),
		"failing": CollectorFunc(func(context.Context, chan<- prometheus.Metric) error {
			return errors.New("open /proc/missing: no such file or directory")
		}),
		"panicking": CollectorFunc(func(context.Context, chan<- prometheus.Metric) error {
			var m map[string]int
			m["boom"]++ // nil map write: a real runtime panic
			return nil
		}),
		// "stuck" ignores its context, like a statfs on a dead NFS mount.
		"stuck": CollectorFunc(func(_ context.Context, ch chan<- prometheus.Metric) error {
			<-release
			ch <- prometheus.MustNewConstMetric(testDesc, prometheus.GaugeValue, 1, "stuck")
			return nil
		}),
		"partial": CollectorFunc(func(_ context.Context, ch chan<- prometheus.Metric) error {
			ch <- prometheus.MustNewConstMetric(testDesc, prometheus.GaugeValue, 1, "partial")
			return errors.New("second source failed")
		}),
		"nodata": CollectorFunc(func(context.Context, chan<- prometheus.Metric) error { return ErrNoData }),
	}
	body := scrape(t, collectors, "1")

	for _, want := range []string{
		`berth_test_value{from="good"} 1`,
		`berth_scrape_collector_success{collector="good"} 1`,
		`berth_scrape_collector_success{collector="nodata"} 1`,
		`berth_scrape_collector_success{collector="failing"} 0`,
		`berth_scrape_collector_success{collector="panicking"} 0`,
		`berth_scrape_collector_success{collector="stuck"} 0`,
		`berth_scrape_collector_success{collector="partial"} 0`,
		`berth_scrape_collector_duration_seconds{collector="stuck"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape output lacks %q\n%s", want, body)
		}
	}
	for _, unwanted := range []string{`from="stuck"`, `from="partial"`} {
		if strings.Contains(body, unwanted) {
			t.Errorf("scrape output has %s, whose collector failed", unwanted)
		}
	}
	// The stuck collector is released only when this test ends: the answer
	// above arrived, so the scrape did not wait for it.
}

func TestScrapeDeadline(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"", DefaultScrapeTimeout - timeoutOffset},
		{"garbage", DefaultScrapeTimeout - timeoutOffset},
		{"-3", DefaultScrapeTimeout - timeoutOffset},
		{"10", 9500 * time.Millisecond},
		{"2.5", 2 * time.Second},
		{"0.4", 300 * time.Millisecond},
	} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if tc.header != "" {
			req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
		}
		if got := ScrapeDeadline(req); got != tc.want {
			t.Errorf("ScrapeDeadline(%q) = %s, want %s", tc.header, got, tc.want)
		}
	}
}

func TestRegistryFlags(t *testing.T) {
	app := kingpin.New("test", "")
	r := NewRegistry(app)
	built := map[string]int{}
	factory := func(name string) Factory {
		return func(*slog.Logger) (Collector, error) { built[name]++; return sends(name), nil }
	}
	r.Register("on", true, factory("on"))
	r.Register("off", false, factory("off"))
	r.Register("optin", false, factory("optin"))
	if _, err := app.Parse([]string{"--no-collector.on", "--collector.optin"}); err != nil {
		t.Fatal(err)
	}
	got, err := r.Build(promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["optin"]; !ok || len(got) != 1 {
		t.Errorf("built %v, want only optin", got)
	}
	if built["on"] != 0 || built["off"] != 0 {
		t.Errorf("disabled collectors were constructed: %v", built)
	}

	app = kingpin.New("test", "")
	r = NewRegistry(app)
	r.Register("broken", true, func(*slog.Logger) (Collector, error) {
		return nil, errors.New("--server.role: must be app or build")
	})
	if _, err := app.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Build(promslog.NewNopLogger()); err == nil || !strings.Contains(err.Error(), "collector broken: --server.role") {
		t.Errorf("Build error = %v, want the factory's error naming the collector", err)
	}
}

func TestStuckCollectorIsNotStartedTwice(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	starts := make(chan struct{}, 10)
	collectors := map[string]Collector{
		"stuck": CollectorFunc(func(context.Context, chan<- prometheus.Metric) error {
			starts <- struct{}{}
			<-release
			return nil
		}),
		"good": sends("good"),
	}
	h := NewScraper(collectors, promslog.NewNopLogger())
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		reg := prometheus.NewRegistry()
		reg.MustRegister(h.ForScrape(ctx))
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	if n := len(starts); n != 1 {
		t.Errorf("stuck collector started %d times over 3 scrapes, want 1", n)
	}
}

// BenchmarkHandlerEngine measures the scrape engine alone: ten collectors
// that each send the same 100 pre-built metrics, served as gzip text. The
// metrics are built once so that what is measured is the engine's own
// cost (goroutines, channels, buffering, gathering) plus encoding.
func BenchmarkHandlerEngine(b *testing.B) {
	desc := prometheus.NewDesc("berth_bench_value", "A benchmark value.", []string{"collector", "i"}, nil)
	collectors := map[string]Collector{}
	for c := range 10 {
		name := fmt.Sprintf("c%d", c)
		metrics := make([]prometheus.Metric, 100)
		for i := range metrics {
			metrics[i] = prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(i), name, strconv.Itoa(i))
		}
		collectors[name] = CollectorFunc(func(_ context.Context, ch chan<- prometheus.Metric) error {
			for _, m := range metrics {
				ch <- m
			}
			return nil
		})
	}
	h := NewHandler(NewScraper(collectors, promslog.NewNopLogger()), prometheus.NewRegistry(), promslog.NewNopLogger())
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// TestHandlerMergesStaticMetrics checks the handler's merge of the
// process-wide registry with each scrape's: both appear, and a family both
// would publish appears once.
func TestHandlerMergesStaticMetrics(t *testing.T) {
	static := prometheus.NewRegistry()
	static.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_static_value", Help: "A static value."}, func() float64 { return 7 }))
	// The same family as the scraper's collector sends: a programming
	// error the handler must not turn into an invalid exposition.
	static.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_test_value", Help: "A test value.", ConstLabels: prometheus.Labels{"from": "static"}}, func() float64 { return 1 }))
	var logs strings.Builder
	h := NewHandler(NewScraper(map[string]Collector{"a": sends("a")}, promslog.NewNopLogger()), static, slog.New(slog.NewTextHandler(&logs, nil)))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := w.Body.String()
	for _, want := range []string{"berth_static_value 7\n", `berth_scrape_collector_success{collector="a"} 1` + "\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("want %q in output:\n%s", want, body)
		}
	}
	if n := strings.Count(body, "# TYPE berth_test_value "); n != 1 {
		t.Errorf("family berth_test_value published %d times, want once:\n%s", n, body)
	}
	if !strings.Contains(body, `berth_test_value{from="static"} 1`) || strings.Contains(body, `berth_test_value{from="a"}`) {
		t.Errorf("want the process-wide registry's berth_test_value kept and the scrape's dropped:\n%s", body)
	}
	if !strings.Contains(logs.String(), "metric family berth_test_value is gathered by two registries") {
		t.Errorf("the clash is not logged; logs:\n%s", logs.String())
	}
	// Families come sorted by name, as from a single registry.
	var names []string
	for line := range strings.Lines(body) {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			names = append(names, strings.Fields(name)[0])
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("families not sorted: %v", names)
	}
}

// TestScrapeManyMetrics sends more metrics than the engine's channel holds,
// twice (the second scrape sizes its buffer from the first): nothing is lost.
func TestScrapeManyMetrics(t *testing.T) {
	desc := prometheus.NewDesc("berth_test_many", "Many values.", []string{"i"}, nil)
	const n = 5 * metricsChanSize
	many := CollectorFunc(func(_ context.Context, ch chan<- prometheus.Metric) error {
		for i := range n {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(i), strconv.Itoa(i))
		}
		return nil
	})
	h := NewHandler(NewScraper(map[string]Collector{"many": many}, promslog.NewNopLogger()), prometheus.NewRegistry(), promslog.NewNopLogger())
	for scrape := range 2 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if got := strings.Count(w.Body.String(), "\nberth_test_many{"); got != n {
			t.Errorf("scrape %d: %d series of berth_test_many, want %d", scrape, got, n)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"gzip": true, "GZIP": true, "deflate, gzip": true, "gzip;q=0.5": true, "br, gzip ; q=1": true,
		"": false, "identity": false, "gzip;q=0": false, "gzip;q=0.0": false, "zstd": false, "xgzip": false,
	} {
		if got := acceptsGzip(header); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", header, got, want)
		}
	}
}

// TestHandlerGzip checks that the handler's own compression gives the same
// exposition as no compression, sequentially (the kept writer is reused)
// and concurrently (temporary writers).
func TestHandlerGzip(t *testing.T) {
	h := NewHandler(NewScraper(map[string]Collector{"a": sends("a"), "b": sends("b")}, promslog.NewNopLogger()), prometheus.NewRegistry(), promslog.NewNopLogger())
	get := func(acceptEncoding string) (string, http.Header) {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", acceptEncoding)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Errorf("status %d", w.Code)
		}
		if w.Header().Get("Content-Encoding") != "gzip" {
			return w.Body.String(), w.Header()
		}
		zr, err := gzip.NewReader(w.Body)
		if err != nil {
			t.Errorf("gzip answer: %v", err)
			return "", w.Header()
		}
		body, err := io.ReadAll(zr)
		if err != nil {
			t.Errorf("gzip answer: %v", err)
		}
		return string(body), w.Header()
	}
	// The durations differ from scrape to scrape; compare the rest.
	stable := func(body string) string {
		var lines []string
		for line := range strings.Lines(body) {
			if !strings.HasPrefix(line, "berth_scrape_collector_duration_seconds{") {
				lines = append(lines, line)
			}
		}
		return strings.Join(lines, "")
	}
	plain, header := get("")
	if header.Get("Content-Encoding") != "" {
		t.Fatalf("no Accept-Encoding: got Content-Encoding %q", header.Get("Content-Encoding"))
	}
	if !strings.Contains(plain, `berth_test_value{from="b"} 1`) {
		t.Fatalf("unexpected answer:\n%s", plain)
	}
	if _, header := get("gzip;q=0"); header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0: got Content-Encoding %q", header.Get("Content-Encoding"))
	}
	for i := range 3 {
		body, header := get("gzip")
		if header.Get("Content-Encoding") != "gzip" || !slices.Contains(header.Values("Vary"), "Accept-Encoding") {
			t.Fatalf("scrape %d: headers %v", i, header)
		}
		if stable(body) != stable(plain) {
			t.Errorf("scrape %d: gzip answer differs from the plain one:\n%s\nwant:\n%s", i, body, plain)
		}
	}
	// Concurrent scrapes may find a collector busy with another one (the
	// engine does not run a collector twice at once), so only the
	// encoding is compared here.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			body, _ := get("gzip")
			if _, err := expfmtParser().TextToMetricFamilies(strings.NewReader(body)); err != nil || !strings.Contains(body, "# TYPE berth_scrape_collector_success gauge\n") {
				t.Errorf("concurrent gzip answer is not a valid exposition (%v):\n%s", err, body)
			}
		})
	}
	wg.Wait()
}

func expfmtParser() *expfmt.TextParser {
	p := expfmt.NewTextParser(model.LegacyValidation)
	return &p
}

// gatherText runs one scrape of s under ctx and returns it as text.
func gatherText(t *testing.T, s *Scraper, ctx context.Context) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.ForScrape(ctx))
	mfs, err := reg.Gather()
	if err != nil {
		t.Error(err) // not Fatal: called from goroutines
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Error(err)
		}
	}
	return b.String()
}

// TestOverlappingScrapesWait runs two scrapes at once, as the two servers
// of an HA Prometheus pair may: the second waits for the collector instead
// of reporting it failed, and the collector never runs twice at once.
func TestOverlappingScrapesWait(t *testing.T) {
	var running, maxRunning, runs atomic.Int32
	entered := make(chan struct{}, 2)
	proceed := make(chan struct{})
	slow := CollectorFunc(func(_ context.Context, ch chan<- prometheus.Metric) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		runs.Add(1)
		entered <- struct{}{}
		<-proceed
		ch <- prometheus.MustNewConstMetric(testDesc, prometheus.GaugeValue, 1, "slow")
		return nil
	})
	s := NewScraper(map[string]Collector{"slow": slow}, promslog.NewNopLogger())
	outs := make(chan string, 2)
	go func() { outs <- gatherText(t, s, context.Background()) }()
	<-entered // the first scrape holds the collector
	go func() { outs <- gatherText(t, s, context.Background()) }()
	close(proceed)
	for range 2 {
		out := <-outs
		if !strings.Contains(out, `berth_scrape_collector_success{collector="slow"} 1`) || !strings.Contains(out, `berth_test_value{from="slow"} 1`) {
			t.Errorf("an overlapping scrape did not get the collector's output:\n%s", out)
		}
	}
	if runs.Load() != 2 || maxRunning.Load() != 1 {
		t.Errorf("collector ran %d times, at most %d at once; want 2 runs, one at a time", runs.Load(), maxRunning.Load())
	}
}

// TestWaitingScrapeStopsWhenHolderGivesUp: a scrape waiting for a
// collector held by another scrape stops waiting when that scrape's
// deadline passes (the collector is stuck), even without a deadline of its
// own: otherwise this test would hang.
func TestWaitingScrapeStopsWhenHolderGivesUp(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	entered := make(chan struct{}, 1)
	stuck := CollectorFunc(func(context.Context, chan<- prometheus.Metric) error {
		entered <- struct{}{}
		<-release
		return nil
	})
	s := NewScraper(map[string]Collector{"stuck": stuck, "good": sends("good")}, promslog.NewNopLogger())
	first, cancel := context.WithCancel(context.Background())
	done := make(chan string, 1)
	go func() { done <- gatherText(t, s, first) }()
	<-entered
	second := make(chan string, 1)
	go func() { second <- gatherText(t, s, context.Background()) }()
	cancel() // the first scrape gives up on the stuck collector
	<-done
	out := <-second
	if !strings.Contains(out, `berth_scrape_collector_success{collector="stuck"} 0`) || !strings.Contains(out, `berth_scrape_collector_success{collector="good"} 1`) {
		t.Errorf("want stuck failed and good fine:\n%s", out)
	}
}

func TestRegistryAlways(t *testing.T) {
	app := kingpin.New("test", "")
	r := NewRegistry(app)
	r.Always("identity", func(*slog.Logger) (Collector, error) { return sends("identity"), nil })
	if _, err := app.Parse([]string{"--no-collector.identity"}); err == nil {
		t.Error("an always-on collector got a flag to switch it off")
	}
	got, err := r.Build(promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["identity"]; !ok {
		t.Errorf("built %v, want identity", got)
	}
}

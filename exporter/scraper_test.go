package exporter

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"log/slog"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
)

var testDesc = prometheus.NewDesc("berth_test_value", "A test value.", []string{"from"}, nil)

func sends(from string) Collector {
	return CollectorFunc(func(_ context.Context, ch chan<- prometheus.Metric) error {
		ch <- prometheus.MustNewConstMetric(testDesc, prometheus.GaugeValue, 1, from)
		return nil
	})
}

func scrape(t *testing.T, collectors map[string]Collector, timeoutHeader string) (string, time.Duration) {
	t.Helper()
	h := NewHandler(NewScraper(collectors, promslog.NewNopLogger()), prometheus.NewRegistry(), promslog.NewNopLogger())
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	if timeoutHeader != "" {
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeoutHeader)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape status %d: %s", resp.StatusCode, body)
	}
	return string(body), time.Since(start)
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
	body, took := scrape(t, collectors, "1")

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
	// The header said 1s: the stuck collector must not hold the answer
	// until it is released (at the end of the test).
	if took > 5*time.Second {
		t.Errorf("scrape took %s although the scraper's timeout was 1s", took)
	}
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

package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "berth"

var (
	scrapeDurationDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "scrape", "collector_duration_seconds"),
		"Duration of a collector scrape.",
		[]string{"collector"}, nil,
	)
	scrapeSuccessDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "scrape", "collector_success"),
		"Whether a collector succeeded (1) or failed, timed out or panicked (0).",
		[]string{"collector"}, nil,
	)
)

// Scraper runs a set of collectors concurrently for one scrape.
type Scraper struct {
	collectors map[string]Collector
	names      []string
	logger     *slog.Logger
	// running marks collectors still busy from an earlier scrape. A stuck
	// collector is not started again until it returns, so a hung mount or
	// socket costs one goroutine, not one per scrape.
	running map[string]*atomic.Bool
}

// NewScraper returns a scraper over the given named collectors.
func NewScraper(collectors map[string]Collector, logger *slog.Logger) *Scraper {
	names := make([]string, 0, len(collectors))
	for name := range collectors {
		names = append(names, name)
	}
	sort.Strings(names)
	running := make(map[string]*atomic.Bool, len(names))
	for _, name := range names {
		running[name] = &atomic.Bool{}
	}
	return &Scraper{collectors: collectors, names: names, logger: logger, running: running}
}

// Names lists the collectors this scraper runs, sorted.
func (s *Scraper) Names() []string { return append([]string(nil), s.names...) }

// ForScrape returns a prometheus.Collector bound to ctx: registering it in a
// fresh registry per request lets every scrape carry its own deadline.
func (s *Scraper) ForScrape(ctx context.Context) prometheus.Collector {
	return &boundScrape{scraper: s, ctx: ctx}
}

type boundScrape struct {
	scraper *Scraper
	ctx     context.Context
}

// Describe sends nothing: the set of metrics depends on the host (mounts,
// devices, containers), so the registry treats this collector as unchecked.
func (b *boundScrape) Describe(chan<- *prometheus.Desc) {}

func (b *boundScrape) Collect(ch chan<- prometheus.Metric) {
	b.scraper.collect(b.ctx, ch)
}

type result struct {
	name     string
	metrics  []prometheus.Metric
	err      error
	duration time.Duration
}

func (s *Scraper) collect(ctx context.Context, ch chan<- prometheus.Metric) {
	results := make(chan result, len(s.names))
	for _, name := range s.names {
		go func(name string, c Collector) {
			results <- s.run(ctx, name, c)
		}(name, s.collectors[name])
	}

	pending := map[string]time.Time{}
	start := time.Now()
	for _, name := range s.names {
		pending[name] = start
	}
	for len(pending) > 0 {
		select {
		case r := <-results:
			delete(pending, r.name)
			s.report(ch, r)
		case <-ctx.Done():
			// Whatever is still running is abandoned: its output is dropped
			// so that one stuck source (a hung NFS statfs, a frozen Docker
			// socket) cannot delay the answer for everything else.
			for name := range pending {
				s.report(ch, result{name: name, err: fmt.Errorf("deadline exceeded: %w", ctx.Err()), duration: time.Since(start)})
			}
			return
		}
	}
}

// run executes one collector, buffering its metrics so that nothing it sends
// after the deadline reaches the response.
func (s *Scraper) run(ctx context.Context, name string, c Collector) (r result) {
	r.name = name
	start := time.Now()
	busy := s.running[name]
	if !busy.CompareAndSwap(false, true) {
		return result{name: name, err: errors.New("still running since an earlier scrape")}
	}
	defer busy.Store(false)
	metrics := make(chan prometheus.Metric)
	var buffered []prometheus.Metric
	var drained sync.WaitGroup
	drained.Add(1)
	go func() {
		defer drained.Done()
		for m := range metrics {
			buffered = append(buffered, m)
		}
	}()
	defer func() {
		if p := recover(); p != nil {
			r.err = fmt.Errorf("panic: %v", p)
		}
		close(metrics)
		drained.Wait()
		if r.err == nil {
			r.metrics = buffered
		}
		r.duration = time.Since(start)
	}()
	r.err = c.Update(ctx, metrics)
	if r.err == nil && ctx.Err() != nil {
		r.err = fmt.Errorf("deadline exceeded: %w", ctx.Err())
	}
	return r
}

func (s *Scraper) report(ch chan<- prometheus.Metric, r result) {
	success := 1.0
	switch {
	case r.err == nil:
	case errors.Is(r.err, ErrNoData):
		s.logger.Debug("collector returned no data", "collector", r.name, "duration_seconds", r.duration.Seconds())
	default:
		success = 0
		s.logger.Error("collector failed", "collector", r.name, "duration_seconds", r.duration.Seconds(), "err", r.err)
	}
	for _, m := range r.metrics {
		ch <- m
	}
	ch <- prometheus.MustNewConstMetric(scrapeDurationDesc, prometheus.GaugeValue, r.duration.Seconds(), r.name)
	ch <- prometheus.MustNewConstMetric(scrapeSuccessDesc, prometheus.GaugeValue, success, r.name)
}

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

// metricsChanSize buffers what one collector sends before its draining
// goroutine runs: enough for most collectors' whole output.
const metricsChanSize = 64

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
	state      map[string]*collectorState
}

// collectorState is what the scraper keeps about one collector between
// scrapes.
type collectorState struct {
	// slot is held by the scrape running the collector: a collector never
	// runs twice at once. A stuck collector is not started again until it
	// returns, so a hung mount or socket costs one goroutine, not one per
	// scrape; a scrape overlapping a live one (the second Prometheus of an
	// HA pair) waits for it instead of failing.
	slot chan struct{}
	// holder is the context of the scrape holding slot, nil while free.
	holder atomic.Pointer[context.Context]
	// sent is how many metrics the collector sent on its last successful
	// scrape: the next scrape sizes its buffer from it, so collecting a
	// thousand series costs one allocation, not a dozen slice growths.
	sent atomic.Int64
}

// acquire takes st's slot for a scrape with context ctx. It fails at once
// when the holder is a scrape that already gave up on the collector (it is
// stuck), and waits for a holder that is still within its deadline.
func (st *collectorState) acquire(ctx context.Context) error {
	select {
	case st.slot <- struct{}{}:
	default:
		var holderDone <-chan struct{}
		if h := st.holder.Load(); h != nil {
			if (*h).Err() != nil {
				return errStillRunning
			}
			holderDone = (*h).Done()
		}
		select {
		case st.slot <- struct{}{}:
		case <-holderDone:
			return errStillRunning
		case <-ctx.Done():
			return fmt.Errorf("waiting for a concurrent scrape to finish it: %w", ctx.Err())
		}
	}
	st.holder.Store(&ctx)
	return nil
}

func (st *collectorState) release() {
	st.holder.Store(nil)
	<-st.slot
}

var errStillRunning = errors.New("still running since an earlier scrape")

// NewScraper returns a scraper over the given named collectors.
func NewScraper(collectors map[string]Collector, logger *slog.Logger) *Scraper {
	names := make([]string, 0, len(collectors))
	for name := range collectors {
		names = append(names, name)
	}
	sort.Strings(names)
	state := make(map[string]*collectorState, len(names))
	for _, name := range names {
		state[name] = &collectorState{slot: make(chan struct{}, 1)}
	}
	return &Scraper{collectors: collectors, names: names, logger: logger, state: state}
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

	pending := make(map[string]bool, len(s.names))
	start := time.Now()
	for _, name := range s.names {
		pending[name] = true
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
	st := s.state[name]
	if err := st.acquire(ctx); err != nil {
		return result{name: name, err: err, duration: time.Since(start)}
	}
	defer st.release()
	// The channel is buffered so that the collector does not hand over to
	// the draining goroutine for every single metric.
	metrics := make(chan prometheus.Metric, metricsChanSize)
	buffered := make([]prometheus.Metric, 0, st.sent.Load())
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
			st.sent.Store(int64(len(buffered)))
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

package exporter

import (
	"compress/gzip"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

const (
	// DefaultScrapeTimeout applies when the scraper does not say how long it
	// waits (Prometheus always sends X-Prometheus-Scrape-Timeout-Seconds;
	// curl does not). It matches Prometheus's default scrape_timeout.
	DefaultScrapeTimeout = 10 * time.Second
	// timeoutOffset leaves room to encode and send the answer before the
	// scraper gives up, as the blackbox exporter does.
	timeoutOffset = 500 * time.Millisecond
)

// ScrapeDeadline derives a collection budget from the scraper's
// X-Prometheus-Scrape-Timeout-Seconds header.
func ScrapeDeadline(r *http.Request) time.Duration {
	header := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds")
	if header == "" {
		return DefaultScrapeTimeout - timeoutOffset
	}
	seconds, err := strconv.ParseFloat(header, 64)
	if err != nil || seconds <= 0 {
		return DefaultScrapeTimeout - timeoutOffset
	}
	timeout := time.Duration(seconds * float64(time.Second))
	if timeout > 2*timeoutOffset {
		return timeout - timeoutOffset
	}
	// Very short timeouts: keep most of the budget for collection.
	return timeout * 3 / 4
}

// Handler serves /metrics: every request gets its own registry holding the
// scraper bound to the request's deadline, plus the process-wide gatherer
// (build info, Go and process metrics).
type Handler struct {
	scraper *Scraper
	static  prometheus.Gatherer
	logger  *slog.Logger
	opts    promhttp.HandlerOpts
	// gzip holds one gzip writer between scrapes. promhttp's own pool is a
	// sync.Pool: it keeps one writer (~800 KB of flate state) per P and the
	// garbage collector empties it, so a scrape every few allocated a new
	// one, and with two Ps two stayed resident. One writer kept here is
	// reused by every scrape; concurrent scrapes make a temporary one.
	gzip chan *gzip.Writer
}

// NewHandler returns the /metrics handler.
func NewHandler(scraper *Scraper, static prometheus.Gatherer, logger *slog.Logger) *Handler {
	return &Handler{scraper: scraper, static: static, logger: logger, opts: promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
		// Compression is done by ServeHTTP (see Handler.gzip).
		DisableCompression: true,
	}, gzip: make(chan *gzip.Writer, 1)}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), ScrapeDeadline(r))
	defer cancel()

	perScrape := prometheus.NewRegistry()
	if err := perScrape.Register(h.scraper.ForScrape(ctx)); err != nil {
		h.logger.Error("registering scrape collector", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	metrics := promhttp.HandlerFor(disjointGatherers{h.static, perScrape}, h.opts)
	if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		metrics.ServeHTTP(w, r)
		return
	}
	var gz *gzip.Writer
	select {
	case gz = <-h.gzip:
		gz.Reset(w)
	default:
		gz = gzip.NewWriter(w)
	}
	metrics.ServeHTTP(&gzipResponseWriter{ResponseWriter: w, gz: gz}, r)
	if err := gz.Close(); err != nil {
		h.logger.Debug("finishing gzip response", "err", err) // the client went away
	}
	select {
	case h.gzip <- gz:
	default: // another scrape's writer is kept already
	}
}

// acceptsGzip reports whether an Accept-Encoding header lists gzip with a
// non-zero quality (Prometheus sends "gzip").
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		for param := range strings.SplitSeq(params, ";") {
			if name, value, ok := strings.Cut(strings.TrimSpace(param), "="); ok && strings.EqualFold(name, "q") {
				q, err := strconv.ParseFloat(value, 64)
				return err == nil && q > 0
			}
		}
		return true
	}
	return false
}

// gzipResponseWriter compresses the body promhttp writes.
type gzipResponseWriter struct {
	http.ResponseWriter
	gz          *gzip.Writer
	wroteHeader bool
}

func (w *gzipResponseWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		h := w.ResponseWriter.Header()
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
		h.Del("Content-Length")
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *gzipResponseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.gz.Write(p)
}

// disjointGatherers merges registries whose metric names do not overlap
// (the process-wide metrics and one scrape's). prometheus.Gatherers would
// re-check and re-hash every metric its registries have already checked,
// which costs about as much as gathering them; here a family name that
// shows up twice is the only thing left to catch: the later one is dropped
// and reported as an error.
type disjointGatherers []prometheus.Gatherer

func (g disjointGatherers) Gather() ([]*dto.MetricFamily, error) {
	var (
		all  []*dto.MetricFamily
		errs prometheus.MultiError
	)
	for _, gatherer := range g {
		mfs, err := gatherer.Gather() // a registry returns what it could gather with its error
		if err != nil {
			errs = append(errs, err)
		}
		all = append(all, mfs...)
	}
	slices.SortStableFunc(all, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	out := all[:0]
	for _, mf := range all {
		if n := len(out); n > 0 && out[n-1].GetName() == mf.GetName() {
			errs = append(errs, fmt.Errorf("metric family %s is gathered by two registries; keeping the first", mf.GetName()))
			continue
		}
		out = append(out, mf)
	}
	return out, errs.MaybeUnwrap()
}

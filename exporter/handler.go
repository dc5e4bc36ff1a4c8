package exporter

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
}

// NewHandler returns the /metrics handler.
func NewHandler(scraper *Scraper, static prometheus.Gatherer, logger *slog.Logger) *Handler {
	return &Handler{scraper: scraper, static: static, logger: logger}
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
	promhttp.HandlerFor(prometheus.Gatherers{h.static, perScrape}, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(h.logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}).ServeHTTP(w, r)
}

package api

import (
	"fmt"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-dev/berth/placement"
)

// unmatchedEndpoint labels requests no route matched, so that scanning
// for random URLs cannot create one series per URL.
const unmatchedEndpoint = "unmatched"

// Metrics are the API's own metrics (listed in docs/placement/api.md).
type Metrics struct {
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	decisions  *prometheus.CounterVec
	rejections *prometheus.CounterVec
}

// newMetrics creates the API metrics and registers them with reg;
// reservations lists the open reservations for the reservations gauge.
func newMetrics(reg prometheus.Registerer, reservations func() []placement.Reservation) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_placement_requests_total",
			Help: "HTTP requests answered by the placement API, by route template and status code.",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "berth_placement_request_duration_seconds",
			Help:    "Time to answer an HTTP request of the placement API, by route template.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_placement_decisions_total",
			Help: "Placement decisions by kind (deployment, build) and outcome (placed, no_fit, error).",
		}, []string{"kind", "outcome"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_placement_rejections_total",
			Help: "Servers rejected by placement decisions, by kind and reason code.",
		}, []string{"kind", "reason"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.decisions, m.rejections, newReservationsCollector(reservations)} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering api metrics: %w", err)
		}
	}
	return m, nil
}

// middleware counts and times every request under its route template
// (c.Path(), e.g. /api/v1/servers/:server), never the raw URL.
func (m *Metrics) middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			if err := next(c); err != nil {
				// Let the error handler write the answer now, so the
				// status code counted is the one the client gets.
				c.Error(err)
			}
			endpoint := c.Path()
			if endpoint == "" || endpoint == "/*" {
				endpoint = unmatchedEndpoint
			}
			m.duration.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
			m.requests.WithLabelValues(endpoint, strconv.Itoa(c.Response().Status)).Inc()
			return nil
		}
	}
}

// decision records one placement decision and the reason of every
// rejected server.
func (m *Metrics) decision(kind, outcome string, reasons []string) {
	m.decisions.WithLabelValues(kind, outcome).Inc()
	for _, r := range reasons {
		m.rejections.WithLabelValues(kind, r).Inc()
	}
}

// reservationsCollector reports berth_placement_reservations{server,kind,state}
// from the reservation store at scrape time, so the gauge can never drift
// from the store.
type reservationsCollector struct {
	list func() []placement.Reservation
	desc *prometheus.Desc
}

func newReservationsCollector(list func() []placement.Reservation) *reservationsCollector {
	return &reservationsCollector{
		list: list,
		desc: prometheus.NewDesc("berth_placement_reservations",
			"Open reservations by server, kind (deployment, build) and state (queued, active).",
			[]string{"server", "kind", "state"}, nil),
	}
}

func (c *reservationsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *reservationsCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ server, kind, state string }
	counts := map[key]int{}
	for _, r := range c.list() {
		counts[key{r.Server, string(r.Kind), string(r.State)}]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), k.server, k.kind, k.state)
	}
}

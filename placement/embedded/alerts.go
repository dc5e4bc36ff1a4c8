package embedded

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/notifier"
)

// alertSendTimeout bounds one POST to Alertmanager.
const alertSendTimeout = 10 * time.Second

// alertSender forwards the rule manager's alerts to Alertmanager's v2 API.
// Send never blocks rule evaluation: batches wait in a bounded queue and are
// dropped (counted, logged) when Alertmanager cannot keep up.
type alertSender struct {
	endpoint string
	client   *http.Client
	logger   *slog.Logger
	queue    chan []*notifier.Alert
	sent     prometheus.Counter
	failed   prometheus.Counter
	dropped  prometheus.Counter
}

func newAlertSender(alertmanagerURL string, logger *slog.Logger, reg prometheus.Registerer) (*alertSender, error) {
	u, err := url.Parse(alertmanagerURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("alertmanager.url: %q is not an http(s) URL", alertmanagerURL)
	}
	s := &alertSender{
		endpoint: strings.TrimSuffix(alertmanagerURL, "/") + "/api/v2/alerts",
		client:   &http.Client{Timeout: alertSendTimeout},
		logger:   logger,
		queue:    make(chan []*notifier.Alert, 100),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_placement_alerts_sent_total", Help: "Alerts sent to Alertmanager.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_placement_alerts_send_failures_total", Help: "Batches of alerts Alertmanager did not accept.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_placement_alerts_dropped_total", Help: "Alerts dropped because the queue to Alertmanager was full.",
		}),
	}
	for _, c := range []prometheus.Collector{s.sent, s.failed, s.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering alert metrics: %w", err)
		}
	}
	return s, nil
}

// Send implements rules.Sender.
func (s *alertSender) Send(alerts ...*notifier.Alert) {
	if len(alerts) == 0 {
		return
	}
	select {
	case s.queue <- alerts:
	default:
		s.dropped.Add(float64(len(alerts)))
		s.logger.Warn("alert queue full, dropping alerts", "count", len(alerts))
	}
}

func (s *alertSender) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case batch := <-s.queue:
			if err := s.post(ctx, batch); err != nil {
				s.failed.Inc()
				s.logger.Error("sending alerts to alertmanager failed", "count", len(batch), "err", err)
				continue
			}
			s.sent.Add(float64(len(batch)))
		}
	}
}

func (s *alertSender) post(ctx context.Context, alerts []*notifier.Alert) error {
	body, err := json.Marshal(alerts)
	if err != nil {
		return fmt.Errorf("encoding alerts: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, alertSendTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("alertmanager answered %s", resp.Status)
	}
	return nil
}

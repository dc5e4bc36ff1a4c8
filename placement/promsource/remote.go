package promsource

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// RemoteConfig points at a Prometheus-API backend that has Berth's
// recording rules loaded.
type RemoteConfig struct {
	// URL is the base URL, e.g. http://prometheus:9090 (Mimir:
	// http://mimir/prometheus).
	URL string
	// Timeout bounds every query (also sent to the server as ?timeout=).
	Timeout time.Duration
	// HTTP holds authentication (bearer token, basic auth, OAuth2) and TLS
	// options in Prometheus's http_config format.
	HTTP config_util.HTTPClientConfig
}

// Remote queries a Prometheus-compatible HTTP API.
type Remote struct {
	api     v1.API
	url     string // redacted, for error messages
	timeout time.Duration
	logger  *slog.Logger
}

// NewRemote builds a client for cfg; it does not contact the server.
func NewRemote(cfg RemoteConfig, logger *slog.Logger) (*Remote, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus.url: %q is not an http(s) URL", cfg.URL)
	}
	if cfg.Timeout <= 0 {
		return nil, fmt.Errorf("prometheus.timeout: must be > 0, got %s", cfg.Timeout)
	}
	if err := cfg.HTTP.Validate(); err != nil {
		return nil, fmt.Errorf("prometheus http config: %w", err)
	}
	httpClient, err := config_util.NewClientFromConfig(cfg.HTTP, "berth_placement_remote")
	if err != nil {
		return nil, fmt.Errorf("prometheus http client: %w", err)
	}
	httpClient.Timeout = cfg.Timeout + time.Second // the context deadline comes first
	client, err := api.NewClient(api.Config{Address: cfg.URL, Client: httpClient})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", u.Redacted(), err)
	}
	return &Remote{api: v1.NewAPI(client), url: u.Redacted(), timeout: cfg.Timeout, logger: logger}, nil
}

// LoadHTTPConfig reads a file in Prometheus's http_config format
// (authorization, basic_auth, oauth2, tls_config, proxy_url, …).
func LoadHTTPConfig(path string) (config_util.HTTPClientConfig, error) {
	cfg, _, err := config_util.LoadHTTPConfigFile(path)
	if err != nil {
		return config_util.HTTPClientConfig{}, fmt.Errorf("loading http config %s: %w", path, err)
	}
	return *cfg, nil
}

// Query implements Querier.
func (r *Remote) Query(ctx context.Context, query string, ts time.Time) (model.Vector, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	value, warnings, _, err := r.api.Query(ctx, query, ts, v1.WithTimeout(r.timeout))
	if err != nil {
		return nil, fmt.Errorf("querying prometheus at %s: %w", r.url, err)
	}
	if len(warnings) > 0 {
		r.logger.Warn("remote query returned warnings", "query", query, "warnings", warnings)
	}
	vector, ok := value.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("querying prometheus at %s: got a %s, want a vector", r.url, value.Type())
	}
	return vector, nil
}

// Ready reports whether the backend answers a trivial query.
func (r *Remote) Ready(ctx context.Context) error {
	_, err := r.Query(ctx, "vector(1)", time.Now())
	return err
}

package promsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	config_util "github.com/prometheus/common/config"

	"github.com/berth-dev/berth/placement/embedded"
)

// Config is everything berth-placement's flags say about where PromQL goes.
// PrometheusURL empty means embedded mode.
type Config struct {
	// Remote mode.
	PrometheusURL string        // --prometheus.url
	RemoteTimeout time.Duration // --prometheus.timeout
	// HTTPConfigFile is a file in Prometheus's http_config format
	// (--prometheus.http-config.file). It excludes the single flags below.
	HTTPConfigFile        string
	BearerTokenFile       string // --prometheus.bearer-token-file
	BasicAuthUsername     string // --prometheus.basic-auth.username
	BasicAuthPasswordFile string // --prometheus.basic-auth.password-file
	TLSCAFile             string // --prometheus.tls.ca-file
	TLSCertFile           string // --prometheus.tls.cert-file
	TLSKeyFile            string // --prometheus.tls.key-file
	TLSServerName         string // --prometheus.tls.server-name
	TLSInsecureSkipVerify bool   // --prometheus.tls.insecure-skip-verify

	// Embedded mode.
	Embedded embedded.Config

	// Both. Zero TTL means no cache (every Snapshot call queries); zero
	// timeout means DefaultSnapshotTimeout.
	SnapshotTTL     time.Duration // --placement.snapshot-ttl
	SnapshotTimeout time.Duration // --placement.snapshot-timeout
}

// Defaults for Config.
const (
	DefaultRemoteTimeout   = 10 * time.Second
	DefaultSnapshotTTL     = time.Second
	DefaultSnapshotTimeout = 15 * time.Second
)

// Source is the opened PromQL source with its Snapshotter.
type Source struct {
	Querier   Querier
	Snapshots *Snapshotter

	embedded *embedded.Prometheus
	remote   *Remote
}

// Open builds the source Config asks for. In embedded mode it starts the
// in-process Prometheus: reg must then be the registry of this one stack
// (berth-placement's own /metrics registry is right: one stack per process).
func Open(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Source, error) {
	s := &Source{}
	if cfg.PrometheusURL != "" {
		httpCfg, err := cfg.httpClientConfig()
		if err != nil {
			return nil, err
		}
		timeout := cfg.RemoteTimeout
		if timeout == 0 {
			timeout = DefaultRemoteTimeout
		}
		s.remote, err = NewRemote(RemoteConfig{URL: cfg.PrometheusURL, Timeout: timeout, HTTP: httpCfg}, logger.With("component", "remote prometheus"))
		if err != nil {
			return nil, err
		}
		s.Querier = s.remote
	} else {
		if err := cfg.checkNoRemoteOptions(); err != nil {
			return nil, err
		}
		var err error
		s.embedded, err = embedded.New(cfg.Embedded, logger, reg)
		if err != nil {
			return nil, err
		}
		s.Querier = s.embedded
	}
	var err error
	s.Snapshots, err = NewSnapshotter(s.Querier, SnapshotterOptions{TTL: cfg.SnapshotTTL, Timeout: cfg.SnapshotTimeout}, logger.With("component", "snapshot"), reg)
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// httpClientConfig builds the remote's HTTP options from the file or flags.
func (cfg Config) httpClientConfig() (config_util.HTTPClientConfig, error) {
	if cfg.HTTPConfigFile != "" {
		if cfg.remoteFlagsSet() {
			return config_util.HTTPClientConfig{}, errors.New("prometheus.http-config.file: cannot be combined with the --prometheus.bearer-token-file, basic-auth or tls flags")
		}
		return LoadHTTPConfig(cfg.HTTPConfigFile)
	}
	c := config_util.DefaultHTTPClientConfig
	if cfg.BearerTokenFile != "" {
		c.Authorization = &config_util.Authorization{Type: "Bearer", CredentialsFile: cfg.BearerTokenFile}
	}
	if cfg.BasicAuthUsername != "" || cfg.BasicAuthPasswordFile != "" {
		if cfg.BasicAuthUsername == "" {
			return c, errors.New("prometheus.basic-auth.username: required with --prometheus.basic-auth.password-file")
		}
		c.BasicAuth = &config_util.BasicAuth{Username: cfg.BasicAuthUsername, PasswordFile: cfg.BasicAuthPasswordFile}
	}
	c.TLSConfig = config_util.TLSConfig{
		CAFile: cfg.TLSCAFile, CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile,
		ServerName: cfg.TLSServerName, InsecureSkipVerify: cfg.TLSInsecureSkipVerify,
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("prometheus http options: %w", err)
	}
	return c, nil
}

// remoteFlagsSet reports whether any remote auth or TLS flag is set.
func (cfg Config) remoteFlagsSet() bool {
	return cfg.BearerTokenFile != "" || cfg.BasicAuthUsername != "" || cfg.BasicAuthPasswordFile != "" ||
		cfg.TLSCAFile != "" || cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" || cfg.TLSServerName != "" || cfg.TLSInsecureSkipVerify
}

func (cfg Config) checkNoRemoteOptions() error {
	if cfg.HTTPConfigFile != "" || cfg.remoteFlagsSet() {
		return errors.New("prometheus.url: required when remote connection options (auth, TLS, http config) are given")
	}
	return nil
}

// Mode is "embedded" or "remote".
func (s *Source) Mode() string {
	if s.embedded != nil {
		return "embedded"
	}
	return "remote"
}

// Ready reports whether the source answers a query (for /-/ready).
func (s *Source) Ready(ctx context.Context) error {
	if s.embedded != nil {
		return s.embedded.Ready(ctx)
	}
	return s.remote.Ready(ctx)
}

// Reload re-reads the embedded scrape configuration and rules; a bad file
// is refused and the running ones stay. Nothing to reload in remote mode.
func (s *Source) Reload() error {
	if s.embedded != nil {
		return s.embedded.Reload()
	}
	return nil
}

// PrometheusAPI is the Prometheus-compatible read API under prefix in
// embedded mode (Grafana datasource URL: http://host:9831/prometheus), nil
// in remote mode (point Grafana at the remote Prometheus instead).
func (s *Source) PrometheusAPI(prefix string) http.Handler {
	if s.embedded == nil {
		return nil
	}
	return s.embedded.APIHandler(prefix)
}

// Close stops the embedded Prometheus (flushing its TSDB).
func (s *Source) Close() error {
	if s.embedded != nil {
		return s.embedded.Stop()
	}
	return nil
}

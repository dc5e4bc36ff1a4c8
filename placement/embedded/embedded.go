// Package embedded runs Prometheus inside berth-placement: TSDB, scrape
// manager, rule manager and PromQL engine from prometheus/prometheus, with
// the shipped rules, alert forwarding and the read API of promapi, so that
// one machine needs nothing else.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	_ "github.com/prometheus/prometheus/discovery/file" // file_sd_configs, as fleetsim writes them
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/berth-dev/berth/placement/embedded/promapi"
	berthrules "github.com/berth-dev/berth/rules"
)

// Config configures the in-process Prometheus.
type Config struct {
	// StoragePath is the TSDB directory; data survives restarts on it.
	StoragePath string
	// Retention is how long samples are kept.
	Retention time.Duration
	// ConfigFile is a Prometheus configuration file (global, scrape_configs,
	// optionally rule_files). Empty: DefaultConfig(ExporterAddress,
	// SelfAddress).
	ConfigFile string
	// ExporterAddress and SelfAddress are the targets of the default
	// configuration: the local berth-exporter and berth-placement itself.
	ExporterAddress string
	SelfAddress     string
	// RuleFiles overrides the rules (glob patterns allowed). Empty: the
	// config file's rule_files, or else the rules shipped with Berth.
	RuleFiles []string
	// AlertmanagerURL receives firing alerts (Alertmanager v2 API) when set.
	AlertmanagerURL string
	// ExternalURL is where users reach berth-placement; alerts link to it.
	ExternalURL string
	// QueryTimeout and MaxSamples bound every PromQL query.
	QueryTimeout time.Duration
	MaxSamples   int
}

// Defaults for the embedded stack.
const (
	DefaultExporterAddress = "localhost:9830"
	DefaultSelfAddress     = "localhost:9831"
	DefaultRetention       = 15 * 24 * time.Hour
	DefaultQueryTimeout    = 30 * time.Second
	DefaultMaxSamples      = 50_000_000
)

// DefaultConfig is the Prometheus configuration used when no file is
// given: Berth's exporter on this machine and berth-placement itself.
func DefaultConfig(exporterAddress, selfAddress string) string {
	return fmt.Sprintf(`global:
  scrape_interval: 15s
  scrape_timeout: 10s
  evaluation_interval: 15s
scrape_configs:
  - job_name: berth-exporter
    static_configs:
      - targets: [%q]
  - job_name: berth-placement
    static_configs:
      - targets: [%q]
`, exporterAddress, selfAddress)
}

// Prometheus is an in-process Prometheus: TSDB, service discovery, scrape
// manager, rule manager (with alert forwarding) and PromQL engine.
type Prometheus struct {
	cfg    Config
	logger *slog.Logger

	db         *tsdb.DB
	engine     *promql.Engine
	discovery  *discovery.Manager
	scrape     *scrape.Manager
	rules      *rules.Manager
	alerts     *alertSender
	shippedDir string
	evalMillis atomic.Int64

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex // serialises Reload and Stop
	stopped bool
}

// New opens the TSDB, loads the configuration and rules, and starts
// discovery, scraping and rule evaluation. Stop releases everything. reg must
// be a registry of its own for this stack: the Prometheus components register
// their metrics on it and refuse to register twice.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (_ *Prometheus, err error) {
	if cfg.StoragePath == "" {
		return nil, errors.New("storage.path: must not be empty")
	}
	switch {
	case cfg.Retention < 0:
		return nil, fmt.Errorf("storage.retention: must be > 0, got %s", cfg.Retention)
	case cfg.QueryTimeout < 0:
		return nil, fmt.Errorf("query.timeout: must be > 0, got %s", cfg.QueryTimeout)
	case cfg.MaxSamples < 0:
		return nil, fmt.Errorf("query.max-samples: must be > 0, got %d", cfg.MaxSamples)
	}
	// Zero means "not set": the documented defaults.
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.QueryTimeout == 0 {
		cfg.QueryTimeout = DefaultQueryTimeout
	}
	if cfg.MaxSamples == 0 {
		cfg.MaxSamples = DefaultMaxSamples
	}
	if cfg.ExporterAddress == "" {
		cfg.ExporterAddress = DefaultExporterAddress
	}
	if cfg.SelfAddress == "" {
		cfg.SelfAddress = DefaultSelfAddress
	}
	e := &Prometheus{cfg: cfg, logger: logger}
	promCfg, err := e.loadConfig()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			e.release()
		}
	}()

	e.shippedDir, err = writeShippedRules()
	if err != nil {
		return nil, err
	}
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = cfg.Retention.Milliseconds()
	e.db, err = tsdb.Open(cfg.StoragePath, logger.With("component", "tsdb"), reg, opts, nil)
	if err != nil {
		return nil, fmt.Errorf("opening tsdb at %s: %w", cfg.StoragePath, err)
	}

	e.evalMillis.Store(time.Duration(promCfg.GlobalConfig.EvaluationInterval).Milliseconds())
	e.engine = promql.NewEngine(promql.EngineOpts{
		Logger:                   logger.With("component", "query engine"),
		Reg:                      reg,
		MaxSamples:               cfg.MaxSamples,
		Timeout:                  cfg.QueryTimeout,
		NoStepSubqueryIntervalFn: func(int64) int64 { return e.evalMillis.Load() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
	})

	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("registering discovery metrics: %w", err)
	}
	e.discovery = discovery.NewManager(ctx, logger.With("component", "discovery manager scrape"), reg, sdMetrics, discovery.Name("scrape"))
	if e.discovery == nil {
		return nil, errors.New("creating discovery manager failed (see log)")
	}
	e.scrape, err = scrape.NewManager(&scrape.Options{DiscoveryReloadOnStartup: true},
		logger.With("component", "scrape manager"), nil, nil, e.db, reg)
	if err != nil {
		return nil, fmt.Errorf("creating scrape manager: %w", err)
	}

	notify := func(context.Context, string, ...*rules.Alert) {}
	if cfg.AlertmanagerURL != "" {
		e.alerts, err = newAlertSender(cfg.AlertmanagerURL, logger.With("component", "alertmanager"), reg)
		if err != nil {
			return nil, err
		}
		notify = rules.SendAlerts(e.alerts, cfg.ExternalURL)
	}
	e.rules = rules.NewManager(&rules.ManagerOptions{
		AppendableV2:    e.db,
		Queryable:       e.db,
		QueryFunc:       rules.EngineQueryFunc(e.engine, e.db),
		NotifyFunc:      notify,
		Context:         ctx,
		Logger:          logger.With("component", "rule manager"),
		Registerer:      reg,
		OutageTolerance: time.Hour,
		ForGracePeriod:  10 * time.Minute,
		ResendDelay:     time.Minute,
	})

	if err := e.apply(promCfg); err != nil {
		return nil, err
	}

	e.wg.Add(3)
	go func() { defer e.wg.Done(); _ = e.discovery.Run() }()
	go func() { defer e.wg.Done(); _ = e.scrape.Run(e.discovery.SyncCh()) }()
	go func() { defer e.wg.Done(); e.rules.Run() }()
	if e.alerts != nil {
		e.wg.Add(1)
		go func() { defer e.wg.Done(); e.alerts.run(ctx) }()
	}
	return e, nil
}

// loadConfig reads the configuration file or the default one.
func (e *Prometheus) loadConfig() (*config.Config, error) {
	if e.cfg.ConfigFile == "" {
		c, err := config.Load(DefaultConfig(e.cfg.ExporterAddress, e.cfg.SelfAddress), e.logger)
		if err != nil {
			return nil, fmt.Errorf("default scrape config: %w", err)
		}
		return c, nil
	}
	c, err := config.LoadFile(e.cfg.ConfigFile, false, e.logger)
	if err != nil {
		return nil, fmt.Errorf("scrape config %s: %w", e.cfg.ConfigFile, err)
	}
	// The embedded Prometheus scrapes, records and evaluates; it does not
	// send alerts by this file or write or read remotely. Refuse such
	// sections rather than ignore them.
	switch {
	case len(c.AlertingConfig.AlertmanagerConfigs) > 0:
		return nil, fmt.Errorf("scrape config %s: alerting.alertmanagers is not supported; use --alertmanager.url", e.cfg.ConfigFile)
	case len(c.RemoteWriteConfigs) > 0, len(c.RemoteReadConfigs) > 0:
		return nil, fmt.Errorf("scrape config %s: remote_write and remote_read are not supported in embedded mode; use --prometheus.url with a Prometheus that has them", e.cfg.ConfigFile)
	}
	return c, nil
}

// ruleFiles resolves which rule files to evaluate: the override, the
// config's rule_files, or the shipped rules.
func (e *Prometheus) ruleFiles(c *config.Config) ([]string, error) {
	patterns := e.cfg.RuleFiles
	if len(patterns) == 0 {
		patterns = c.RuleFiles
	}
	if len(patterns) == 0 {
		patterns = []string{filepath.Join(e.shippedDir, "*.rules.yml")}
	}
	var files []string
	for _, p := range patterns {
		matches, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("rules.file: bad pattern %q: %w", p, err)
		}
		if len(matches) == 0 && len(e.cfg.RuleFiles) > 0 {
			return nil, fmt.Errorf("rules.file: %q matches no file", p)
		}
		files = append(files, matches...)
	}
	return files, nil
}

// apply hands a loaded configuration to discovery, scraping and rules.
func (e *Prometheus) apply(c *config.Config) error {
	files, err := e.ruleFiles(c)
	if err != nil {
		return err
	}
	if err := e.scrape.ApplyConfig(c); err != nil {
		return fmt.Errorf("applying scrape config: %w", err)
	}
	scfgs, err := c.GetScrapeConfigs()
	if err != nil {
		return fmt.Errorf("scrape configs: %w", err)
	}
	sd := make(map[string]discovery.Configs, len(scfgs))
	for _, s := range scfgs {
		sd[s.JobName] = s.ServiceDiscoveryConfigs
	}
	if err := e.discovery.ApplyConfig(sd); err != nil {
		return fmt.Errorf("applying service discovery config: %w", err)
	}
	interval := time.Duration(c.GlobalConfig.EvaluationInterval)
	e.evalMillis.Store(interval.Milliseconds())
	if err := e.rules.Update(interval, files, c.GlobalConfig.ExternalLabels, e.cfg.ExternalURL, nil); err != nil {
		return fmt.Errorf("loading rules %v: %w", files, err)
	}
	return nil
}

// Reload re-reads the configuration file and the rules. A bad file is
// refused with an error and the running configuration stays.
func (e *Prometheus) Reload() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return errors.New("embedded prometheus is stopped")
	}
	c, err := e.loadConfig()
	if err != nil {
		return err
	}
	// Check the rules before touching anything, so a bad rule file
	// leaves scraping as it was too.
	files, err := e.ruleFiles(c)
	if err != nil {
		return err
	}
	if _, errs := rules.NewManager(&rules.ManagerOptions{}).LoadGroups(time.Minute, labels.EmptyLabels(), "", nil, false, files...); len(errs) > 0 {
		return fmt.Errorf("loading rules %v: %w", files, errors.Join(errs...))
	}
	return e.apply(c)
}

// Query implements Querier over the local TSDB.
func (e *Prometheus) Query(ctx context.Context, query string, ts time.Time) (model.Vector, error) {
	v, err := e.instant(ctx, query, ts, func(v parser.Value) (model.Value, error) { return toModel(v), nil })
	if err != nil {
		return nil, err
	}
	vector, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("embedded query: got a %s, want a vector", v.Type())
	}
	return vector, nil
}

// instant runs an instant query and converts its result before the query's
// memory is released.
func (e *Prometheus) instant(ctx context.Context, query string, ts time.Time, convert func(parser.Value) (model.Value, error)) (model.Value, error) {
	q, err := e.engine.NewInstantQuery(ctx, e.db, nil, query, ts)
	if err != nil {
		return nil, fmt.Errorf("embedded query: %w", err)
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, fmt.Errorf("embedded query: %w", res.Err)
	}
	return convert(res.Value)
}

// Ready reports whether the stack answers queries.
func (e *Prometheus) Ready(ctx context.Context) error {
	_, err := e.Query(ctx, "vector(1)", time.Now())
	return err
}

// Stop stops scraping and rule evaluation and closes the TSDB.
func (e *Prometheus) Stop() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return nil
	}
	e.stopped = true
	return e.release()
}

// release stops whatever New got to start.
func (e *Prometheus) release() error {
	if e.rules != nil {
		e.rules.Stop()
	}
	if e.scrape != nil {
		e.scrape.Stop()
	}
	if e.cancel != nil {
		e.cancel()
	}
	e.wg.Wait()
	var errs []error
	if e.engine != nil {
		errs = append(errs, e.engine.Close())
	}
	if e.db != nil {
		if err := e.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing tsdb: %w", err))
		}
	}
	if e.shippedDir != "" {
		errs = append(errs, os.RemoveAll(e.shippedDir))
	}
	return errors.Join(errs...)
}

// writeShippedRules copies the rules embedded in the binary to a temporary
// directory, because the rule manager loads files by path.
func writeShippedRules() (string, error) {
	dir, err := os.MkdirTemp("", "berth-rules-")
	if err != nil {
		return "", fmt.Errorf("writing shipped rules: %w", err)
	}
	if err := berthrules.WriteTo(dir, nil); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("writing shipped rules: %w", err)
	}
	return dir, nil
}

// APIHandler serves the Prometheus-compatible read API over this stack
// under prefix (promapi), so Grafana can use berth-placement as a
// datasource.
func (e *Prometheus) APIHandler(prefix string) http.Handler {
	return promapi.New(prefix, e.engine, e.db, e.cfg.QueryTimeout)
}

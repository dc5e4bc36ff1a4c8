// Command berth-placement is Berth's placement API: it decides where
// deployments go over PromQL, from an in-process Prometheus (default) or a
// remote Prometheus-API backend (--prometheus.url).
package main

import (
	"github.com/berth-dev/berth/placement/build"
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/quota"
	"github.com/berth-dev/berth/placement/reservation"
	"github.com/berth-dev/berth/placement/schedule"

	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/berth-dev/berth/internal/clidoc"
	"github.com/berth-dev/berth/placement/api"
	"github.com/berth-dev/berth/placement/embedded"
	"github.com/berth-dev/berth/placement/promsource"
)

// prometheusAPIPrefix is where the embedded Prometheus's read API is
// served, for Grafana (datasource URL http://host:9831/prometheus).
const prometheusAPIPrefix = "/prometheus"

// shutdownTimeout bounds how long in-flight requests may finish on exit.
const shutdownTimeout = 10 * time.Second

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	app := kingpin.New("berth-placement", "Berth's placement API: capacity checks, server choice and reservations over PromQL.")
	webConfig := kingpinflag.AddFlags(app, ":9831")
	// Optional files given explicitly empty ("--placement.policy-file=")
	// are refused: empty would silently mean "not set" (for the tokens
	// file: no authentication).
	var tokensSet, policySet, promURLSet, scrapeConfigSet bool
	var (
		tokensFile  = app.Flag("web.bearer-tokens-file", "File with one bearer token per line; when set, every /api/v1 call, POST /-/reload and the embedded Prometheus API under /prometheus need 'Authorization: Bearer <token>'. Re-read on reload.").IsSetByUser(&tokensSet).String()
		externalURL = app.Flag("web.external-url", "URL under which berth-placement is reached (used in alert links).").String()
		readTimeout = app.Flag("web.read-timeout", "Maximum time to read a whole request, headers and body: a client that stalls is answered 400 and its connection closed.").Default("30s").Duration()
		storagePath = app.Flag("storage.path", "Data directory: reservations, and the TSDB in embedded mode.").Default("data/").String()
		resSync     = app.Flag("storage.reservations.sync-interval", "Reservations are written before every answer (a killed process loses none) and fsynced together at this interval (a power loss forgets at most this much). 0: fsync every change before answering (slower: a few hundred reserving placements per second).").Default("1s").Duration()
		policyFile  = app.Flag("placement.policy-file", "Placement policy YAML (merged over the embedded defaults). Reloaded on SIGHUP and POST /-/reload.").IsSetByUser(&policySet).String()
		snapshotTTL = app.Flag("placement.snapshot-ttl", "How long one fleet snapshot answers requests (0s: every request queries).").Default(promsource.DefaultSnapshotTTL.String()).Duration()
		snapshotTO  = app.Flag("placement.snapshot-timeout", "Deadline of one fleet snapshot (all its queries).").Default(promsource.DefaultSnapshotTimeout.String()).Duration()

		promURL      = app.Flag("prometheus.url", "Remote mode: base URL of a Prometheus-API backend with Berth's recording rules loaded. Not set: embedded Prometheus.").IsSetByUser(&promURLSet).String()
		promTimeout  = app.Flag("prometheus.timeout", "Remote mode: timeout of each query.").Default(promsource.DefaultRemoteTimeout.String()).Duration()
		promHTTPFile = app.Flag("prometheus.http-config.file", "Remote mode: Prometheus http_config file (authorization, basic_auth, oauth2, tls_config, proxy). Excludes the flags below.").String()
		promBearer   = app.Flag("prometheus.bearer-token-file", "Remote mode: file holding a bearer token.").String()
		promUser     = app.Flag("prometheus.basic-auth.username", "Remote mode: basic auth user.").String()
		promPassFile = app.Flag("prometheus.basic-auth.password-file", "Remote mode: file holding the basic auth password.").String()
		promCA       = app.Flag("prometheus.tls.ca-file", "Remote mode: CA certificate file.").String()
		promCert     = app.Flag("prometheus.tls.cert-file", "Remote mode: client certificate file.").String()
		promKey      = app.Flag("prometheus.tls.key-file", "Remote mode: client key file.").String()
		promSNI      = app.Flag("prometheus.tls.server-name", "Remote mode: TLS server name.").String()
		promInsecure = app.Flag("prometheus.tls.insecure-skip-verify", "Remote mode: do not verify the server certificate.").Bool()

		scrapeConfig = app.Flag("scrape.config-file", "Embedded mode: Prometheus configuration file (global, scrape_configs, rule_files). Default: scrape the local berth-exporter and berth-placement itself.").IsSetByUser(&scrapeConfigSet).String()
		exporterAddr = app.Flag("scrape.exporter-address", "Embedded mode, default scrape config: address of the local berth-exporter.").Default(embedded.DefaultExporterAddress).String()
		ruleFiles    = app.Flag("rules.file", "Embedded mode: rule files (globs allowed; repeatable) instead of the rules shipped with Berth.").Strings()
		amURL        = app.Flag("alertmanager.url", "Embedded mode: Alertmanager that receives firing alerts.").String()
		queryTimeout = app.Flag("query.timeout", "Embedded mode: maximum time a PromQL query may take.").Default(embedded.DefaultQueryTimeout.String()).Duration()
		maxSamples   = app.Flag("query.max-samples", "Embedded mode: maximum samples a query may load.").Default(fmt.Sprint(embedded.DefaultMaxSamples)).Int()
	)
	// Prometheus-style durations ("15d"), which time.Duration flags refuse.
	retention := model.Duration(embedded.DefaultRetention)
	app.Flag("storage.retention", "Embedded mode: how long samples are kept.").Default(retention.String()).SetValue(&retention)
	logConfig := &promslog.Config{}
	promslogflag.AddFlags(app, logConfig)
	app.Version(version.Print("berth-placement"))
	app.HelpFlag.Short('h')
	clidoc.AddFlag(app)
	if _, err := app.Parse(args); err != nil {
		fmt.Fprintf(os.Stderr, "berth-placement: error: %v\n", err)
		return 2
	}
	checks := []flagCheck{
		nonEmpty("storage.path", *storagePath),
		nonNegativeDuration("placement.snapshot-ttl", *snapshotTTL),
		nonNegativeDuration("storage.reservations.sync-interval", *resSync),
		positiveDuration("placement.snapshot-timeout", *snapshotTO),
		positiveDuration("web.read-timeout", *readTimeout),
		positiveDuration("prometheus.timeout", *promTimeout),
		hostPort("scrape.exporter-address", *exporterAddr),
		eachNonEmpty("rules.file", *ruleFiles),
		positiveDuration("query.timeout", *queryTimeout),
		positiveInt("query.max-samples", *maxSamples),
		positiveDuration("storage.retention", time.Duration(retention)),
	}
	if webConfig.WebListenAddresses != nil && !*webConfig.WebSystemdSocket {
		for _, addr := range *webConfig.WebListenAddresses {
			checks = append(checks, hostPort("web.listen-address", addr))
		}
	}
	for flag, set := range map[string]bool{
		"web.bearer-tokens-file": tokensSet && *tokensFile == "",
		"placement.policy-file":  policySet && *policyFile == "",
		"prometheus.url":         promURLSet && *promURL == "",
		"scrape.config-file":     scrapeConfigSet && *scrapeConfig == "",
	} {
		if set {
			checks = append(checks, nonEmpty(flag, ""))
		}
	}
	if err := validateFlags(checks...); err != nil {
		fmt.Fprintf(os.Stderr, "berth-placement: error: %v\n", err)
		return 2
	}
	logger := promslog.New(logConfig)
	logger.Info("starting berth-placement", "version", version.Info(), "build_context", version.BuildContext())

	fail := func(what string, err error) int {
		logger.Error(what, "err", err)
		fmt.Fprintf(os.Stderr, "berth-placement: %s: %v\n", what, err)
		return 1
	}

	policies, err := policy.NewStore(*policyFile)
	if err != nil {
		return fail("loading placement policy", err)
	}
	tokens, err := api.LoadTokens(*tokensFile)
	if err != nil {
		return fail("loading bearer tokens", err)
	}
	if tokens.Enabled() {
		logger.Info("bearer token authentication enabled for /api/v1")
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		versioncollector.NewCollector("berth_placement"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	src, err := promsource.Open(promsource.Config{
		PrometheusURL:         *promURL,
		RemoteTimeout:         *promTimeout,
		HTTPConfigFile:        *promHTTPFile,
		BearerTokenFile:       *promBearer,
		BasicAuthUsername:     *promUser,
		BasicAuthPasswordFile: *promPassFile,
		TLSCAFile:             *promCA,
		TLSCertFile:           *promCert,
		TLSKeyFile:            *promKey,
		TLSServerName:         *promSNI,
		TLSInsecureSkipVerify: *promInsecure,
		Embedded: embedded.Config{
			StoragePath:     filepath.Join(*storagePath, "tsdb"),
			Retention:       time.Duration(retention),
			ConfigFile:      *scrapeConfig,
			ExporterAddress: *exporterAddr,
			SelfAddress:     selfAddress(webConfig),
			RuleFiles:       *ruleFiles,
			AlertmanagerURL: *amURL,
			ExternalURL:     *externalURL,
			QueryTimeout:    *queryTimeout,
			MaxSamples:      *maxSamples,
		},
		SnapshotTTL:     *snapshotTTL,
		SnapshotTimeout: *snapshotTO,
	}, logger, reg)
	if err != nil {
		return fail("opening the prometheus source", err)
	}
	defer func() {
		if err := src.Close(); err != nil {
			logger.Error("closing the prometheus source", "err", err)
		}
	}()
	logger.Info("prometheus source", "mode", src.Mode(), "url", redactedURL(*promURL))

	store, err := reservation.Open(filepath.Join(*storagePath, "reservations"), nil)
	if err != nil {
		return fail("opening the reservation store", err)
	}
	defer func() {
		// Close carries the last fsync's result: a failure means recent
		// reservations may not survive a power loss.
		if err := store.Close(); err != nil {
			logger.Error("closing the reservation store", "err", err)
		}
	}()
	store.SyncEvery(*resSync, func(err error) {
		logger.Error("syncing reservations to disk failed; they are written but not yet durable", "err", err)
	})
	// Organization quotas: the admission runs inside the placer's
	// decide-and-reserve critical section, so concurrent placements cannot
	// overshoot a quota; usage and limits go to /metrics for the alert.
	placer := schedule.NewPlacer(policies, store, quota.Admission())
	// Confirmed deployments stop counting as reserved once a new snapshot
	// shows their application running on the reserved server.
	snapshots, err := reservation.NewReleasingSource(src.Snapshots, store, logger.With("component", "reservations"), reg)
	if err != nil {
		return fail("wrapping the snapshot source", err)
	}
	reg.MustRegister(quota.NewCollector(snapshots, policies, store.List, logger.With("component", "quotas")))

	// Build records (expected durations of open build reservations, and
	// finished builds for history estimates) live beside the reservations.
	buildRecords, err := build.OpenRecords(filepath.Join(*storagePath, "builds"))
	if err != nil {
		return fail("opening the build records", err)
	}

	mounts := map[string]http.Handler{}
	if h := src.PrometheusAPI(prometheusAPIPrefix); h != nil {
		mounts[prometheusAPIPrefix] = h
	}
	handler, err := api.New(api.Options{
		Logger:    logger.With("component", "api"),
		Snapshots: snapshots,
		Policy:    policies,
		Placer:    placer,
		Tokens:    tokens,
		Ready:     src.Ready,
		// Run in this order on POST /-/reload and SIGHUP, each on its own.
		Reloaders: []api.Reloader{
			{Name: "placement policy", Reload: policies.Reload, Code: api.CodeInvalidPolicy},
			{Name: "bearer tokens", Reload: tokens.Reload},
			{Name: "prometheus configuration and rules", Reload: src.Reload},
		},
		Registerer: reg,
		Gatherer:   reg,
		Mounts:     mounts,
		Version:    version.Info(),
		Builds: &api.BuildsConfig{
			Records: buildRecords,
			History: promsource.NewBuildHistory(src.Querier, 0, 0),
		},
	})
	if err != nil {
		return fail("building the API", err)
	}

	// ReadTimeout bounds the body as well as the headers, so a stalled
	// upload cannot hold a connection (and a handler) for ever; keep-alive
	// connections may idle longer.
	server := &http.Server{Handler: handler, ReadHeaderTimeout: min(10*time.Second, *readTimeout), ReadTimeout: *readTimeout, IdleTimeout: 2 * time.Minute}
	serveErr := make(chan error, 1)
	go func() { serveErr <- web.ListenAndServe(server, webConfig, logger) }()

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	for {
		select {
		case err := <-serveErr:
			if errors.Is(err, http.ErrServerClosed) {
				return 0
			}
			return fail("serving", err)
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				// Each file reloads or is refused on its own (a bad policy
				// does not keep rotated tokens out); each outcome is logged.
				if err := handler.Reload(); err != nil {
					logger.Error("reload on SIGHUP failed for some files: they keep their previous configuration, the others were reloaded", "err", err)
				}
				continue
			}
			logger.Info("shutting down", "signal", sig.String())
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			err := server.Shutdown(ctx)
			cancel()
			if err != nil {
				logger.Warn("shutting down the HTTP server", "err", err)
			}
			return 0
		}
	}
}

// selfAddress is where the embedded Prometheus scrapes berth-placement's
// own /metrics: the first listen address, with a wildcard host made local.
func selfAddress(flags *web.FlagConfig) string {
	if flags == nil || flags.WebListenAddresses == nil || len(*flags.WebListenAddresses) == 0 {
		return embedded.DefaultSelfAddress
	}
	host, port, err := net.SplitHostPort((*flags.WebListenAddresses)[0])
	if err != nil {
		return embedded.DefaultSelfAddress
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// redactedURL hides a password given in the URL's user info, so it never
// reaches the log.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable)"
	}
	return u.Redacted()
}

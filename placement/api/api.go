// Package api is berth-placement's HTTP interface: the JSON API under
// /api/v1 (echo handlers, the JSON error model, bearer-token auth, the
// OpenAPI document), the operational endpoints (/metrics, /-/healthy,
// /-/ready, /-/reload) and the landing page. It holds no placement logic:
// handlers decode, call the placement package and encode its answers.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/berth-dev/berth/placement"
)

// Prefix is where the JSON API lives.
const Prefix = "/api/v1"

// readyTimeout bounds the /-/ready probe's question to Prometheus.
const readyTimeout = 5 * time.Second

// PolicySource gives the current placement policy.
type PolicySource interface {
	Policy() *placement.Policy
}

// Reloader is something /-/reload (and SIGHUP in the main) reloads. On
// error it must keep its previous state.
type Reloader struct {
	Name   string
	Reload func() error
	// Code is the error code /-/reload answers (with 422) when this reload
	// refuses its file; empty means invalid_argument. A *placement.FieldError
	// in the error chain also sets the answer's field (the policy path).
	Code string
}

// Options are the API's dependencies.
type Options struct {
	Logger *slog.Logger
	// Snapshots reads the fleet; it fails when Prometheus is unreachable,
	// and the API then answers 503.
	Snapshots placement.SnapshotSource
	Policy    PolicySource
	// Placer decides and reserves atomically; its store holds the
	// reservations.
	Placer *placement.Placer
	// Tokens guards /api/v1; nil or empty means no authentication.
	Tokens *Tokens
	// Ready reports whether the data source answers (/-/ready). Nil means
	// "a snapshot can be taken".
	Ready func(ctx context.Context) error
	// Reloaders run, in order, on POST /-/reload.
	Reloaders []Reloader
	// Registerer receives the API's metrics; Gatherer is served on /metrics.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Mounts are extra plain handlers by path prefix (e.g. the embedded
	// Prometheus API under /prometheus/). Like /api/v1 and /-/reload they
	// need a bearer token when Tokens is enabled: arbitrary PromQL must not
	// be open when the operator asked for authentication.
	Mounts map[string]http.Handler
	// Version is shown on the landing page.
	Version string
	// Builds configures the build endpoints (builds.go); nil: build
	// records in memory, estimates from the policy's profiles only.
	Builds *BuildsConfig
}

// API is the HTTP interface of berth-placement.
type API struct {
	opts    Options
	logger  *slog.Logger
	metrics *Metrics
	echo    *echo.Echo
	routes  []route

	openAPIJSON []byte
	// buildExpected gives open build reservations' expected durations
	// (the build records), for build decisions outside the build routes.
	buildExpected func(id string) (time.Duration, bool)
}

// New builds the API and registers every route.
func New(opts Options) (*API, error) {
	if opts.Snapshots == nil || opts.Policy == nil || opts.Placer == nil {
		return nil, errors.New("api: Snapshots, Policy and Placer are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.NewRegistry()
	}
	doc, err := OpenAPIDocument()
	if err != nil {
		return nil, err
	}
	metrics, err := newMetrics(opts.Registerer, opts.Placer.Store().List)
	if err != nil {
		return nil, err
	}
	a := &API{opts: opts, logger: opts.Logger, metrics: metrics, openAPIJSON: doc}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(a.logger)
	e.JSONSerializer = indentJSONSerializer{}
	// Auth is by URL prefix rather than on a route group, so that unknown
	// paths and wrong methods under /api/v1 need a token too before they
	// answer 404/405 (a group's catch-all would also turn 405s into 404s).
	// /metrics, /-/healthy, /-/ready and the landing page follow the web
	// config only, so that scrapers and probes need no API token.
	guarded := []string{Prefix, reloadPath}
	for prefix := range opts.Mounts {
		guarded = append(guarded, strings.TrimSuffix(prefix, "/"))
	}
	e.Use(a.metrics.middleware(), recoverPanics(a.logger), opts.Tokens.middleware(guarded...))
	a.echo = e

	a.routes = a.apiRoutes()
	v1 := e.Group(Prefix)
	for _, r := range a.routes {
		v1.Add(r.Method, r.Path, r.Handler)
	}

	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelError),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})))
	e.Match([]string{http.MethodGet, http.MethodHead}, "/-/healthy", a.healthy)
	e.Match([]string{http.MethodGet, http.MethodHead}, "/-/ready", a.ready)
	e.Match([]string{http.MethodPost, http.MethodPut}, reloadPath, a.reload)
	for prefix, h := range opts.Mounts {
		e.Any(strings.TrimSuffix(prefix, "/")+"/*", echo.WrapHandler(h))
	}
	landing, err := a.landingPage()
	if err != nil {
		return nil, err
	}
	e.GET("/", echo.WrapHandler(landing))
	return a, nil
}

// ServeHTTP makes the API an http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.echo.ServeHTTP(w, r) }

// reloadPath reloads the configuration files.
const reloadPath = "/-/reload"

// Reload runs every reloader, stopping at the first failure. The error is
// a *ReloadError.
func (a *API) Reload() error {
	for _, r := range a.opts.Reloaders {
		if err := r.Reload(); err != nil {
			return &ReloadError{Reloader: r.Name, Code: r.Code, Err: err}
		}
		a.logger.Info("reloaded", "what", r.Name)
	}
	return nil
}

// ReloadError is a refused reload: which reloader refused its file, and why.
type ReloadError struct {
	Reloader string
	Code     string
	Err      error
}

func (e *ReloadError) Error() string { return fmt.Sprintf("reloading %s: %v", e.Reloader, e.Err) }

func (e *ReloadError) Unwrap() error { return e.Err }

func (a *API) healthy(c echo.Context) error {
	return c.String(http.StatusOK, "Healthy\n")
}

func (a *API) ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
	defer cancel()
	var err error
	if a.opts.Ready != nil {
		err = a.opts.Ready(ctx)
	} else {
		_, err = a.opts.Snapshots.Snapshot(ctx)
	}
	if err != nil {
		return c.String(http.StatusServiceUnavailable, fmt.Sprintf("Not ready: %v\n", err))
	}
	return c.String(http.StatusOK, "Ready\n")
}

// reload answers a refused configuration file with 422: reloading only
// reads the operator's files, so a failure is bad input, never a fault of
// the server. The previous configuration stays.
func (a *API) reload(c echo.Context) error {
	err := a.Reload()
	if err == nil {
		return c.String(http.StatusOK, "Reloaded\n")
	}
	a.logger.Error("reload failed, keeping the previous configuration", "err", err)
	apiErr := &Error{Status: http.StatusUnprocessableEntity, Code: CodeInvalidArgument, Message: err.Error()}
	var re *ReloadError
	if errors.As(err, &re) && re.Code != "" {
		apiErr.Code = re.Code
	}
	// The first field at fault (a policy error may join several; the
	// message lists them all).
	var fe *placement.FieldError
	if errors.As(err, &fe) {
		apiErr.Field = fe.Field
	}
	return apiErr
}

// snapshot reads the fleet, turning a source failure into 503.
func (a *API) snapshot(ctx context.Context) (*placement.Snapshot, error) {
	snap, err := a.opts.Snapshots.Snapshot(ctx)
	if err != nil {
		return nil, unavailable(fmt.Errorf("reading the fleet from prometheus: %w", err))
	}
	return snap, nil
}

// recoverPanics turns a handler panic into a 500 with a log line, so one
// bug answers one request badly instead of killing the process.
func recoverPanics(logger *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if p := recover(); p != nil {
					logger.Error("handler panicked", "path", c.Path(), "panic", p)
					err = &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
				}
			}()
			return next(c)
		}
	}
}

// Package api is berth-placement's HTTP interface: the JSON API under
// /api/v1 (echo handlers, the JSON error model, bearer-token auth, the
// OpenAPI document), the operational endpoints (/metrics, /-/healthy,
// /-/ready, /-/reload) and the landing page. It holds no placement logic:
// handlers decode, call the placement package and encode its answers.
package api

import (
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/schedule"

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
	Policy() *policy.Policy
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
	Placer *schedule.Placer
	// Tokens guards /api/v1; nil or empty means no authentication.
	Tokens *Tokens
	// Ready reports whether the data source answers (/-/ready). Nil means
	// "a snapshot can be taken".
	Ready func(ctx context.Context) error
	// Reloaders run, in order and each on its own, on POST /-/reload and
	// Reload (SIGHUP).
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

// Reload runs every reloader, each on its own: one that refuses its file
// keeps its previous configuration and neither stops nor undoes the
// others (a bad policy file must not keep a rotated token file from being
// read). The error joins a *ReloadError per refusal; nil when all
// reloaded.
func (a *API) Reload() error {
	_, err := a.reloadEach()
	return err
}

// Reload outcomes.
const (
	ReloadReloaded = "reloaded"
	ReloadRefused  = "refused"
)

// ReloadOutcome is what one reloader did on a reload.
type ReloadOutcome struct {
	// Name is the reloader's (e.g. "placement policy", "bearer tokens").
	Name string `json:"name"`
	// Outcome is ReloadReloaded, or ReloadRefused when the file was refused
	// and the previous configuration stays.
	Outcome string `json:"outcome"`
	// Error says why it was refused: code, message and, for the policy,
	// the field path at fault.
	Error *Error `json:"error,omitempty"`
}

// ReloadAnswer is the body of a 200 from /-/reload, and the details of its
// 422: every reloader's outcome, in the order they ran.
type ReloadAnswer struct {
	Reloaders []ReloadOutcome `json:"reloaders"`
}

// reloadEach runs every reloader and returns each one's outcome, and the
// refusals joined (nil when none).
func (a *API) reloadEach() ([]ReloadOutcome, error) {
	outcomes := make([]ReloadOutcome, 0, len(a.opts.Reloaders))
	var refusals []error
	for _, r := range a.opts.Reloaders {
		err := r.Reload()
		if err == nil {
			a.logger.Info("reloaded", "what", r.Name)
			outcomes = append(outcomes, ReloadOutcome{Name: r.Name, Outcome: ReloadReloaded})
			continue
		}
		re := &ReloadError{Reloader: r.Name, Code: r.Code, Err: err}
		a.logger.Error("reload refused, keeping the previous configuration", "what", r.Name, "err", err)
		refusals = append(refusals, re)
		outcomes = append(outcomes, ReloadOutcome{Name: r.Name, Outcome: ReloadRefused, Error: re.apiError()})
	}
	return outcomes, errors.Join(refusals...)
}

// ReloadError is a refused reload: which reloader refused its file, and why.
type ReloadError struct {
	Reloader string
	Code     string
	Err      error
}

func (e *ReloadError) Error() string { return fmt.Sprintf("reloading %s: %v", e.Reloader, e.Err) }

// apiError is the refusal in the JSON error model: the reloader's code
// (invalid_argument when it has none) and the first field at fault (a
// policy error may join several; the message lists them all).
func (e *ReloadError) apiError() *Error {
	out := &Error{Status: http.StatusUnprocessableEntity, Code: e.Code, Message: e.Error()}
	if out.Code == "" {
		out.Code = CodeInvalidArgument
	}
	var fe *placement.FieldError
	if errors.As(e.Err, &fe) {
		out.Field = fe.Field
	}
	return out
}

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

// reload answers with every reloader's outcome: 200 when all reloaded,
// else 422 (reloading only reads the operator's files, so a refusal is bad
// input, never a fault of the server) in the JSON error model, with the
// first refusal's code and field, every refusal in the message, and the
// outcomes in details. A refused file's previous configuration stays; the
// other files are reloaded all the same.
func (a *API) reload(c echo.Context) error {
	outcomes, err := a.reloadEach()
	answer := ReloadAnswer{Reloaders: outcomes}
	if err == nil {
		return c.JSON(http.StatusOK, answer)
	}
	var first *Error
	for _, o := range outcomes {
		if o.Error != nil {
			first = o.Error
			break
		}
	}
	return &Error{Status: http.StatusUnprocessableEntity, Code: first.Code, Field: first.Field, Message: err.Error(), Details: answer}
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

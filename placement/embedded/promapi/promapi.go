// Package promapi serves the read part of Prometheus's HTTP API over an
// engine and a store, so Grafana, promtool or client_golang can use
// berth-placement's embedded Prometheus as a datasource.
package promapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// maxRangePoints is Prometheus's own limit of points per range query series.
const maxRangePoints = 11000

// apiError is an error in Prometheus's API vocabulary.
type apiError struct {
	typ    string // bad_data | execution | timeout | canceled | internal
	err    error
	status int
}

func (e *apiError) Error() string { return e.err.Error() }

func badData(format string, args ...any) *apiError {
	return &apiError{typ: "bad_data", err: fmt.Errorf(format, args...), status: http.StatusBadRequest}
}

// promAPI serves the read part of Prometheus's HTTP API over the embedded
// stack, so Grafana (or promtool, or client_golang) can use berth-placement
// as a Prometheus datasource.
type promAPI struct {
	engine  *promql.Engine
	db      storage.Queryable
	timeout time.Duration
	parser  parser.Parser
}

// New serves a Prometheus-compatible read API over engine and db under
// prefix (for example "/prometheus"): GET/POST {prefix}/api/v1/query,
// query_range, series, labels, label/{name}/values, metadata,
// query_exemplars and status/buildinfo. queryTimeout bounds each query.
//
// It is written here rather than taken from prometheus/web/api/v1, whose
// constructor wants the whole server (45 parameters: scrape, rules,
// alerting, remote write, …) for the handful of read endpoints a
// datasource needs.
func New(prefix string, engine *promql.Engine, db storage.Queryable, queryTimeout time.Duration) http.Handler {
	a := &promAPI{engine: engine, db: db, timeout: queryTimeout, parser: parser.NewParser(parser.Options{})}
	prefix = strings.TrimSuffix(prefix, "/")
	mux := http.NewServeMux()
	handle := func(path string, f func(*http.Request) (any, annotations.Annotations, *apiError)) {
		mux.HandleFunc(prefix+path, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodPost {
				w.Header().Set("Allow", "GET, POST")
				writeAPI(w, nil, nil, &apiError{typ: "bad_data", err: errors.New("method not allowed"), status: http.StatusMethodNotAllowed})
				return
			}
			if err := r.ParseForm(); err != nil {
				writeAPI(w, nil, nil, badData("parsing form: %v", err))
				return
			}
			data, annos, apiErr := f(r)
			writeAPI(w, data, annos, apiErr)
		})
	}
	handle("/api/v1/query", a.query)
	handle("/api/v1/query_range", a.queryRange)
	handle("/api/v1/series", a.series)
	handle("/api/v1/labels", a.labelNames)
	handle("/api/v1/label/{name}/values", a.labelValues)
	// Grafana asks for these; the embedded store keeps neither metadata
	// nor exemplars, and says so with empty answers rather than 404s.
	handle("/api/v1/metadata", func(*http.Request) (any, annotations.Annotations, *apiError) {
		return map[string]any{}, nil, nil
	})
	handle("/api/v1/query_exemplars", func(*http.Request) (any, annotations.Annotations, *apiError) {
		return []any{}, nil, nil
	})
	handle("/api/v1/status/buildinfo", func(*http.Request) (any, annotations.Annotations, *apiError) {
		return buildInfo(), nil, nil
	})
	return mux
}

type apiResponse struct {
	Status    string   `json:"status"`
	Data      any      `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Infos     []string `json:"infos,omitempty"`
}

func writeAPI(w http.ResponseWriter, data any, annos annotations.Annotations, apiErr *apiError) {
	w.Header().Set("Content-Type", "application/json")
	resp := apiResponse{Status: "success", Data: data}
	status := http.StatusOK
	if apiErr != nil {
		resp = apiResponse{Status: "error", ErrorType: apiErr.typ, Error: apiErr.err.Error()}
		status = apiErr.status
	}
	resp.Warnings, resp.Infos = annos.AsStrings("", 10, 10)
	body, err := json.Marshal(resp)
	if err != nil {
		http.Error(w, `{"status":"error","errorType":"internal","error":"encoding response"}`, http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

type queryData struct {
	ResultType parser.ValueType `json:"resultType"`
	Result     parser.Value     `json:"result"`
}

func (a *promAPI) context(r *http.Request) (context.Context, context.CancelFunc, *apiError) {
	timeout := a.timeout
	if v := r.FormValue("timeout"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return nil, nil, badData("invalid parameter \"timeout\": %v", err)
		}
		timeout = min(timeout, d)
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	return ctx, cancel, nil
}

func (a *promAPI) query(r *http.Request) (any, annotations.Annotations, *apiError) {
	ts := time.Now()
	if v := r.FormValue("time"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			return nil, nil, badData("invalid parameter \"time\": %v", err)
		}
		ts = t
	}
	ctx, cancel, apiErr := a.context(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	defer cancel()
	q, err := a.engine.NewInstantQuery(ctx, a.db, nil, r.FormValue("query"), ts)
	if err != nil {
		return nil, nil, badData("invalid parameter \"query\": %v", err)
	}
	return a.exec(ctx, q)
}

func (a *promAPI) queryRange(r *http.Request) (any, annotations.Annotations, *apiError) {
	start, err := parseTime(r.FormValue("start"))
	if err != nil {
		return nil, nil, badData("invalid parameter \"start\": %v", err)
	}
	end, err := parseTime(r.FormValue("end"))
	if err != nil {
		return nil, nil, badData("invalid parameter \"end\": %v", err)
	}
	if end.Before(start) {
		return nil, nil, badData("invalid parameter \"end\": end timestamp must not be before start time")
	}
	step, err := parseDuration(r.FormValue("step"))
	if err != nil {
		return nil, nil, badData("invalid parameter \"step\": %v", err)
	}
	if step <= 0 {
		return nil, nil, badData("invalid parameter \"step\": zero or negative query resolution step widths are not accepted")
	}
	if end.Sub(start)/step > maxRangePoints {
		return nil, nil, badData("exceeded maximum resolution of %d points per timeseries; try decreasing the query resolution (?step=XX)", maxRangePoints)
	}
	ctx, cancel, apiErr := a.context(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	defer cancel()
	q, err := a.engine.NewRangeQuery(ctx, a.db, nil, r.FormValue("query"), start, end, step)
	if err != nil {
		return nil, nil, badData("invalid parameter \"query\": %v", err)
	}
	return a.exec(ctx, q)
}

// exec runs the query and marshals its result before the engine recycles it.
func (a *promAPI) exec(ctx context.Context, q promql.Query) (any, annotations.Annotations, *apiError) {
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Warnings, classify(res.Err)
	}
	raw, err := json.Marshal(queryData{ResultType: res.Value.Type(), Result: res.Value})
	if err != nil {
		return nil, nil, &apiError{typ: "internal", err: fmt.Errorf("encoding result: %w", err), status: http.StatusInternalServerError}
	}
	return json.RawMessage(raw), res.Warnings, nil
}

func classify(err error) *apiError {
	var (
		timeout  promql.ErrQueryTimeout
		canceled promql.ErrQueryCanceled
		store    promql.ErrStorage
	)
	switch {
	case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		return &apiError{typ: "timeout", err: err, status: http.StatusServiceUnavailable}
	case errors.As(err, &canceled), errors.Is(err, context.Canceled):
		return &apiError{typ: "canceled", err: err, status: 499}
	case errors.As(err, &store):
		return &apiError{typ: "internal", err: err, status: http.StatusInternalServerError}
	}
	return &apiError{typ: "execution", err: err, status: http.StatusUnprocessableEntity}
}

// timeRange reads optional start/end (default: all data up to now, as
// Prometheus's metadata endpoints do).
func timeRange(r *http.Request) (int64, int64, *apiError) {
	start, end := time.Unix(0, 0), time.Now()
	if v := r.FormValue("start"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			return 0, 0, badData("invalid parameter \"start\": %v", err)
		}
		start = t
	}
	if v := r.FormValue("end"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			return 0, 0, badData("invalid parameter \"end\": %v", err)
		}
		end = t
	}
	return start.UnixMilli(), end.UnixMilli(), nil
}

func (a *promAPI) matchers(r *http.Request, required bool) ([][]*labels.Matcher, *apiError) {
	values := r.Form["match[]"]
	if len(values) == 0 && required {
		return nil, badData("no match[] parameter provided")
	}
	sets, err := a.parser.ParseMetricSelectors(values)
	if err != nil {
		return nil, badData("invalid parameter \"match[]\": %v", err)
	}
	return sets, nil
}

func (a *promAPI) series(r *http.Request) (any, annotations.Annotations, *apiError) {
	sets, apiErr := a.matchers(r, true)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	mint, maxt, apiErr := timeRange(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	ctx, cancel, apiErr := a.context(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	defer cancel()
	q, err := a.db.Querier(mint, maxt)
	if err != nil {
		return nil, nil, &apiError{typ: "internal", err: err, status: http.StatusInternalServerError}
	}
	defer q.Close()
	seen := map[uint64]bool{}
	out := []labels.Labels{}
	var annos annotations.Annotations
	hints := &storage.SelectHints{Start: mint, End: maxt, Func: "series"}
	for _, ms := range sets {
		set := q.Select(ctx, false, hints, ms...)
		for set.Next() {
			ls := set.At().Labels()
			if h := ls.Hash(); !seen[h] {
				seen[h] = true
				out = append(out, ls.Copy())
			}
		}
		if err := set.Err(); err != nil {
			return nil, nil, &apiError{typ: "internal", err: err, status: http.StatusInternalServerError}
		}
		annos.Merge(set.Warnings())
	}
	return out, annos, nil
}

func (a *promAPI) labelNames(r *http.Request) (any, annotations.Annotations, *apiError) {
	return a.labels(r, func(ctx context.Context, q storage.Querier, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelNames(ctx, nil, ms...)
	})
}

func (a *promAPI) labelValues(r *http.Request) (any, annotations.Annotations, *apiError) {
	name := r.PathValue("name")
	if !model.UTF8Validation.IsValidLabelName(name) {
		return nil, nil, badData("invalid label name: %q", name)
	}
	return a.labels(r, func(ctx context.Context, q storage.Querier, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelValues(ctx, name, nil, ms...)
	})
}

// labels merges the names or values found for every match[] set.
func (a *promAPI) labels(r *http.Request, get func(context.Context, storage.Querier, ...*labels.Matcher) ([]string, annotations.Annotations, error)) (any, annotations.Annotations, *apiError) {
	sets, apiErr := a.matchers(r, false)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	mint, maxt, apiErr := timeRange(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	ctx, cancel, apiErr := a.context(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	defer cancel()
	q, err := a.db.Querier(mint, maxt)
	if err != nil {
		return nil, nil, &apiError{typ: "internal", err: err, status: http.StatusInternalServerError}
	}
	defer q.Close()
	seen := map[string]bool{}
	out := []string{}
	var annos annotations.Annotations
	for _, ms := range sets {
		values, w, err := get(ctx, q, ms...)
		if err != nil {
			return nil, nil, &apiError{typ: "internal", err: err, status: http.StatusInternalServerError}
		}
		annos.Merge(w)
		for _, v := range values {
			if !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	slices.Sort(out)
	return out, annos, nil
}

// buildInfo answers /status/buildinfo with the version of the Prometheus
// library inside (module v0.316.0 is Prometheus 3.16.0), which Grafana
// reads to decide which PromQL features it may use.
func buildInfo() map[string]string {
	version := "3.0.0"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/prometheus/prometheus" {
				version = libraryVersion(m.Version, version)
			}
		}
	}
	return map[string]string{
		"version":   version,
		"revision":  "berth-placement-embedded",
		"branch":    "",
		"buildUser": "",
		"buildDate": "",
		"goVersion": runtime.Version(),
	}
}

// libraryVersion maps the Go module version v0.MNN.P to Prometheus M.NN.P.
func libraryVersion(module, fallback string) string {
	parts := strings.SplitN(strings.TrimPrefix(module, "v0."), ".", 2)
	if len(parts) != 2 {
		return fallback
	}
	minor, err := strconv.Atoi(parts[0])
	if err != nil || minor < 100 {
		return fallback
	}
	patch := strings.SplitN(parts[1], "-", 2)[0]
	return fmt.Sprintf("%d.%d.%s", minor/100, minor%100, patch)
}

// parseTime accepts what Prometheus accepts: unix seconds (with fraction)
// or RFC 3339.
func parseTime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// parseDuration accepts seconds (with fraction) or a Prometheus duration.
func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f*float64(time.Second) > math.MaxInt64 {
			return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

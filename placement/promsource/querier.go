// Package source is where berth-placement's PromQL goes: a small Querier
// interface with two implementations — Remote (any Prometheus-API backend:
// Prometheus, Thanos, Mimir, VictoriaMetrics) and Embedded (an in-process
// Prometheus: TSDB, scrape manager, rule manager and PromQL engine) — and the
// Snapshotter that turns a handful of vector queries over Berth's recording
// rules into a placement.Snapshot.
package promsource

import (
	"context"
	"time"

	"github.com/prometheus/common/model"
)

// Querier runs an instant PromQL query. Both implementations answer with
// prometheus/common/model types, so callers do not care where the data
// lives. A result that is not an instant vector is an error.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time) (model.Vector, error)
}

// Package exporter is berth-exporter's scrape engine: a registry of named
// collectors that can be switched on and off by flags, and a scraper that runs
// the enabled ones concurrently, each under a deadline, isolating failures and
// panics so that one broken source never breaks the whole /metrics answer.
package exporter

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector gathers one family of metrics at scrape time.
//
// Update sends metrics on ch and returns when done. It must honour ctx: when
// the scrape deadline passes the scraper stops waiting and discards whatever
// the collector sends afterwards.
type Collector interface {
	Update(ctx context.Context, ch chan<- prometheus.Metric) error
}

// ErrNoData tells the scraper that a collector had nothing to report on this
// host (for example no PSI support in the kernel). It is logged at debug
// level and does not count as a failure.
var ErrNoData = errors.New("collector returned no data")

// CollectorFunc adapts a function to the Collector interface.
type CollectorFunc func(ctx context.Context, ch chan<- prometheus.Metric) error

// Update calls f.
func (f CollectorFunc) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	return f(ctx, ch)
}

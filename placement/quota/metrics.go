package quota

import (
	"maps"
	"slices"

	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/schedule"

	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// quotaSnapshotTimeout bounds the fleet snapshot one scrape of the quota
// metrics waits for.
const quotaSnapshotTimeout = 10 * time.Second

var (
	quotaLimitDesc = prometheus.NewDesc("berth_organization_quota_limit",
		"Organization quota limit per resource (servers, applications, cpu_cores, memory_bytes); absent when unlimited, 0 allows none.",
		[]string{"organization", "resource"}, nil)
	quotaUsageDesc = prometheus.NewDesc("berth_organization_usage",
		"Organization usage per resource as quota checks count it: servers, distinct applications, allocated CPU cores and memory bytes of managed containers (unlimited ones at the policy's default request) plus open deployment reservations.",
		[]string{"organization", "resource"}, nil)
)

// Collector exports every organization's quota limits and usage at
// scrape time, so Prometheus can alert on them (BerthOrganizationOverQuota).
// Limits come from the current policy and are exported even when the fleet
// cannot be read; usage needs a snapshot and is left out (with a log line,
// berth_placement_source_up says why) when there is none.
type Collector struct {
	snapshots    placement.SnapshotSource
	policies     schedule.PolicySource
	reservations func() []placement.Reservation
	logger       *slog.Logger
}

// NewCollector returns a collector over the fleet, the policy and the
// open reservations (e.g. ReservationStore.List).
func NewCollector(snapshots placement.SnapshotSource, policies schedule.PolicySource, reservations func() []placement.Reservation, logger *slog.Logger) *Collector {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Collector{snapshots: snapshots, policies: policies, reservations: reservations, logger: logger}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- quotaLimitDesc
	ch <- quotaUsageDesc
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	p := c.policies.Policy()
	for _, org := range slices.Sorted(maps.Keys(p.Quotas.Organizations)) {
		limits := LimitsFor(p, org)
		for _, r := range AllResources {
			if v, ok := limits.Get(r); ok {
				ch <- prometheus.MustNewConstMetric(quotaLimitDesc, prometheus.GaugeValue, v, org, string(r))
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), quotaSnapshotTimeout)
	defer cancel()
	snap, err := c.snapshots.Snapshot(ctx)
	if err != nil {
		c.logger.Warn("organization usage not exported: no fleet snapshot", "err", err)
		return
	}
	open := c.reservations()
	for _, org := range Organizations(p, snap, open) {
		st := StatusOf(p, snap, org, open)
		for _, r := range AllResources {
			ch <- prometheus.MustNewConstMetric(quotaUsageDesc, prometheus.GaugeValue, st.Usage.Get(r), org, string(r))
		}
	}
}

package reservation

import (
	"github.com/berth-dev/berth/placement"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// ReleasingSource is a SnapshotSource that ends confirmed deployment
// reservations once the fleet snapshot shows their deployment running: from
// then on the container's own limits (allocated) and use (observed) carry
// it, and keeping the reservation would count the same deployment twice
// until the confirm grace ran out.
//
// It does this inside Snapshot, once per new snapshot (a cached snapshot
// handed out again is not looked at twice), so every decision that reads
// the fleet through it sees the reservations metrics have taken over
// released. Without requests nothing is released, and nothing needs to be:
// reservations only matter to decisions, and the grace still bounds them.
type ReleasingSource struct {
	source   placement.SnapshotSource
	store    *Store
	logger   *slog.Logger
	released prometheus.Counter

	mu   sync.Mutex
	last *placement.Snapshot
}

var _ placement.SnapshotSource = (*ReleasingSource)(nil)

// NewReleasingSource wraps source; confirmed reservations in store are
// released as their deployments show. It registers
// berth_placement_reservations_observed_total on reg.
func NewReleasingSource(source placement.SnapshotSource, store *Store, logger *slog.Logger, reg prometheus.Registerer) (*ReleasingSource, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &ReleasingSource{
		source: source,
		store:  store,
		logger: logger,
		released: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_placement_reservations_observed_total",
			Help: "Confirmed deployment reservations released because a fleet snapshot showed their application running on the reserved server.",
		}),
	}
	if reg != nil {
		if err := reg.Register(r.released); err != nil {
			return nil, fmt.Errorf("registering reservation release metric: %w", err)
		}
	}
	return r, nil
}

// Snapshot implements SnapshotSource: it returns the wrapped source's
// snapshot (and its error, unchanged) after releasing, when the snapshot is
// new, the confirmed reservations it shows running.
func (r *ReleasingSource) Snapshot(ctx context.Context) (*placement.Snapshot, error) {
	snap, err := r.source.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	seen := snap == r.last
	r.last = snap
	r.mu.Unlock()
	if !seen {
		// Callers sharing this snapshot meanwhile return at once: they may
		// still count a reservation being released, which errs on the safe
		// side.
		r.Release(snap)
	}
	return snap, nil
}

// Release releases every reservation Observed finds in snap and returns how
// many it released. A reservation released or expired meanwhile is
// skipped; a failure to persist is logged and the reservation stays (the
// confirm grace still ends it).
func (r *ReleasingSource) Release(snap *placement.Snapshot) int {
	n := 0
	for _, res := range Observed(snap, r.store.List()) {
		if _, err := r.store.ReleaseObserved(res.ID); err != nil {
			if !errors.Is(err, ErrNotFound) {
				r.logger.Warn("releasing an observed reservation", "id", res.ID, "server", res.Server, "application_id", res.ApplicationID, "err", err)
			}
			continue
		}
		n++
		r.released.Inc()
		r.logger.Debug("reservation released: its deployment shows in metrics", "id", res.ID, "server", res.Server, "application_id", res.ApplicationID)
	}
	return n
}

// Observed returns the reservations of open whose deployment snap shows
// running: confirmed deployment reservations with an application id that
// runs on the reserved server, in a sample scraped after the confirmation.
//
// The last condition matters for a redeployment to the same server: the
// application's previous container shows in metrics before the new one
// does, and the deployer confirms only once the new one runs, so a scrape
// taken after the confirmation sees the new container (the exporter lists
// containers at scrape time). An unconfirmed reservation is never observed:
// its deployment may not have started. Timestamps come from the scraping
// Prometheus, so a remote Prometheus whose clock runs behind delays the
// release by that much, never past the grace.
func Observed(snap *placement.Snapshot, open []placement.Reservation) []placement.Reservation {
	if snap == nil {
		return nil
	}
	var out []placement.Reservation
	for _, res := range open {
		if res.Kind != placement.KindDeployment || res.ConfirmedAt == nil || res.ApplicationID == "" {
			continue
		}
		st := snap.Servers[res.Server]
		if st == nil || st.Applications[res.ApplicationID] <= 0 || !st.LastSeen.After(*res.ConfirmedAt) {
			continue
		}
		out = append(out, res)
	}
	return out
}

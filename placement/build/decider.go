// Package build is build placement: the load of each build server (Load),
// the least-loaded choice under build caps (Decider), estimates from the
// policy's profiles refined by history (Estimator), and the records of
// open and finished builds behind them (Records).
package build

import (
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/fit"
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/schedule"

	"cmp"
	"fmt"
	"slices"
	"time"
)

// Outcome is what a build placement answered.
type Outcome string

// Build placement outcomes.
const (
	// Placed: a build server was chosen.
	Placed Outcome = "placed"
	// Full: every build server that could take the build runs as many
	// builds as its cap; the answer carries the shortest expected wait
	// instead of overloading one.
	Full Outcome = "full"
	// NoFit: no build server can take it (memory, disk, metrics).
	NoFit Outcome = "no_fit"
	// OnDeploymentServer: the fleet has no build server at all; the
	// deployment server builds, as Coolify does without one.
	OnDeploymentServer Outcome = "build_on_deployment_server"
)

// Wait is when a full build server is expected to have a slot.
type Wait struct {
	Server        string    `json:"server"`
	Seconds       float64   `json:"seconds"`
	ExpectedStart time.Time `json:"expected_start"`
}

// Decider chooses the least-loaded build server with room for a
// build. It is a Decider for Placer.PlaceWith, so the choice and the
// reservation are atomic: concurrent build placements see each other's
// queued reservations and never put a server above its cap. Use one per
// request: Decide leaves its explanation (loads, outcome, wait) in the
// fields below.
type Decider struct {
	// Expected gives the expected duration of an open build reservation;
	// nil or unknown ids count as builds.default_profile's duration.
	Expected func(id string) (time.Duration, bool)
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	// Loads is every build server's load as the decision saw it.
	Loads   []Load
	Outcome Outcome
	// Wait is set when Outcome is BuildFull.
	Wait *Wait
	// TieBreak is set when the chosen server won a tie-break rather than
	// being the single least loaded.
	TieBreak *TieBreak
}

// TieBreak says that a tie-break decided a build placement: the
// servers whose load scores were within Tolerance (builds.tie_tolerance) of
// the least loaded, in the order a hash of the request put them; the first
// was chosen. A retry with the same idempotency key hashes the same way.
type TieBreak struct {
	Tolerance float64  `json:"tolerance"`
	Servers   []string `json:"servers"`
}

// Decide implements Decider. Only build servers are considered. A server
// is rejected when it is not fresh (metrics_stale, metrics_missing), when
// memory or disk (and CPU, when the request names CPU) do not fit the
// build's requirements (insufficient_memory, insufficient_disk,
// disk_threshold, insufficient_cpu), or when its running plus queued
// builds reach its cap (at_build_capacity). The others are ranked by load
// score, lowest first; servers within builds.tie_tolerance of the least
// loaded (0: only equal scores) are ordered by the seed's hash, and
// TieBreak names them.
func (d *Decider) Decide(p *policy.Policy, snap *placement.Snapshot, req *placement.Request, open []placement.Reservation, seed uint64) *placement.Decision {
	now := time.Now()
	if d.Now != nil {
		now = d.Now()
	}
	names := Servers(snap)
	dec := &placement.Decision{Kind: placement.KindBuild, Considered: len(names), Ranking: []placement.Ranked{}, Rejected: []placement.Rejected{}}
	d.Loads, d.Wait, d.Outcome, d.TieBreak = []Load{}, nil, "", nil
	var full []Load
	for _, name := range names {
		s := snap.Servers[name]
		load := LoadOf(p, s, open)
		d.Loads = append(d.Loads, load)
		f := fit.Server(p, name, s, placement.KindBuild, req.Requirements, load.Reserved)
		if f.Freshness != placement.Fresh {
			dec.Rejected = append(dec.Rejected, placement.Rejected{Server: name, Reasons: f.Reasons, Freshness: f.Freshness})
			continue
		}
		dims := buildDimensions(f.Dimensions, req.Requirements.CPU > 0)
		var reasons []placement.Reason
		for _, dm := range dims {
			if !dm.Fits {
				reasons = append(reasons, dm.Reason)
			}
		}
		if load.Full() {
			reasons = append(reasons, placement.ReasonAtBuildCapacity)
			if len(reasons) == 1 && load.ConcurrentBuilds > 0 {
				full = append(full, load)
			}
		}
		if len(reasons) > 0 {
			dec.Rejected = append(dec.Rejected, placement.Rejected{Server: name, Reasons: reasons, Freshness: f.Freshness, Dimensions: dims})
			continue
		}
		dec.Ranking = append(dec.Ranking, placement.Ranked{Server: name, Score: load.Score, Dimensions: dims})
	}
	// RankWithTieBreak puts higher scores first; a lower load is better.
	for i := range dec.Ranking {
		dec.Ranking[i].Score = -dec.Ranking[i].Score
	}
	tied := schedule.RankWithTieBreak(dec.Ranking, p.Builds.TieTolerance, seed)
	for i := range dec.Ranking {
		dec.Ranking[i].Score = -dec.Ranking[i].Score + 0 // +0 turns -0 into 0
	}
	if tied > 1 {
		d.TieBreak = &TieBreak{Tolerance: p.Builds.TieTolerance, Servers: make([]string, tied)}
		for i := range tied {
			d.TieBreak.Servers[i] = dec.Ranking[i].Server
		}
	}
	dec.Summary = schedule.Summary(len(dec.Ranking), dec.Considered, placement.KindBuild, dec.Rejected)
	switch {
	case len(names) == 0:
		d.Outcome = OnDeploymentServer
		dec.Summary = "no build server in the fleet: build on the deployment server"
	case len(dec.Ranking) > 0:
		d.Outcome = Placed
		dec.Chosen, dec.Score = dec.Ranking[0].Server, dec.Ranking[0].Score
	case len(full) > 0:
		d.Outcome = Full
		for _, l := range full {
			w := d.waitFor(p, l, open, now)
			if d.Wait == nil || w < time.Duration(d.Wait.Seconds*float64(time.Second)) {
				d.Wait = &Wait{Server: l.Server, Seconds: w.Round(time.Second).Seconds(), ExpectedStart: now.Add(w).Round(time.Second).UTC()}
			}
		}
		dec.Summary += fmt.Sprintf("; every build server with room for it is at its build cap, shortest expected wait %s on %s",
			time.Duration(d.Wait.Seconds*float64(time.Second)), d.Wait.Server)
	default:
		d.Outcome = NoFit
	}
	return dec
}

// buildDimensions keeps the dimensions a build is checked on: memory and
// disk always, CPU only when the request names it (otherwise CPU is the
// load score's business, and the cap's).
func buildDimensions(dims []placement.DimensionFit, withCPU bool) []placement.DimensionFit {
	out := []placement.DimensionFit{}
	for _, d := range dims {
		if d.Dimension != placement.DimensionCPU || withCPU {
			out = append(out, d)
		}
	}
	return out
}

// waitFor estimates when server l has a slot for one more build: every
// running build ends at its start + expected duration (a build seen only
// in metrics, whose start is unknown, is taken as half done: half the
// default profile's duration left; a build past its expected end may end
// any moment), queued builds take the freed slots first, in order, each
// for its expected duration.
func (d *Decider) waitFor(p *policy.Policy, l Load, open []placement.Reservation, now time.Time) time.Duration {
	def := p.Builds.Profiles[p.Builds.DefaultProfile].Duration
	expected := func(id string) time.Duration {
		if d.Expected != nil {
			if e, ok := d.Expected(id); ok && e > 0 {
				return e
			}
		}
		return def
	}
	var ends []time.Time
	var queued []placement.Reservation
	for _, r := range open {
		if r.Server != l.Server || r.Kind != placement.KindBuild {
			continue
		}
		switch {
		case r.State == placement.StateQueued:
			queued = append(queued, r)
		case r.StartedAt != nil:
			ends = append(ends, laterOf(now, r.StartedAt.Add(expected(r.ID))))
		}
	}
	for range l.ActiveBuilds - len(ends) {
		ends = append(ends, now.Add(def/2))
	}
	slices.SortFunc(queued, func(a, b placement.Reservation) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	t := now
	take := func() time.Time {
		for len(ends) >= l.ConcurrentBuilds {
			i := 0
			for j := range ends {
				if ends[j].Before(ends[i]) {
					i = j
				}
			}
			t = laterOf(t, ends[i])
			ends = slices.Delete(ends, i, i+1)
		}
		return t
	}
	for _, q := range queued {
		start := take()
		ends = append(ends, start.Add(expected(q.ID)))
	}
	return take().Sub(now)
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

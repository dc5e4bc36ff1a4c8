// Package schedule turns a request into a decision and, when asked, a
// reservation, as one atomic step: the Placer reads the open reservations,
// runs a Decider (Choose for deployments; builds bring their own) and the
// admissions (quotas), and writes the reservation under the store's lock.
// Check runs the same decision without reserving, so check and place agree.
package schedule

import (
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/fit"
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/reservation"

	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// PolicySource gives the current policy; *PolicyStore is one.
type PolicySource interface {
	Policy() *policy.Policy
}

// Decider turns a fleet snapshot and the open reservations into a
// decision for a request. The deployment decider is Policy.Choose; build
// placement supplies its own (least loaded build server, build caps).
type Decider interface {
	Decide(p *policy.Policy, snap *placement.Snapshot, req *placement.Request, open []placement.Reservation, seed uint64) *placement.Decision
}

// DeciderFunc adapts a function to Decider.
type DeciderFunc func(p *policy.Policy, snap *placement.Snapshot, req *placement.Request, open []placement.Reservation, seed uint64) *placement.Decision

// Decide calls f.
func (f DeciderFunc) Decide(p *policy.Policy, snap *placement.Snapshot, req *placement.Request, open []placement.Reservation, seed uint64) *placement.Decision {
	return f(p, snap, req, open, seed)
}

// DeploymentDecider chooses a server for a deployment with Policy.Choose,
// counting every open reservation on each server.
var DeploymentDecider Decider = DeciderFunc(func(p *policy.Policy, snap *placement.Snapshot, req *placement.Request, open []placement.Reservation, seed uint64) *placement.Decision {
	return Choose(p, snap, req, ReservedByServer(open), seed)
})

// ReservedByServer sums reservations per server.
func ReservedByServer(open []placement.Reservation) map[string]placement.Resources {
	out := map[string]placement.Resources{}
	for _, r := range open {
		out[r.Server] = out[r.Server].Add(r.Resources)
	}
	return out
}

// AdmissionInput is what an admission check sees: the decision about to be
// returned (and reserved, when asked) and the same open reservations the
// decision was made with.
type AdmissionInput struct {
	Policy   *policy.Policy
	Snapshot *placement.Snapshot
	Request  *placement.Request
	Decision *placement.Decision
	Open     []placement.Reservation
}

// Admission is a check that runs inside the placement critical section
// after a server was chosen and before the reservation is written, so what
// it allows cannot be overshot by concurrent placements (organization
// quotas are one). A non-nil error refuses the placement; Place returns it
// as is, so the caller can tell it apart with errors.As.
type Admission interface {
	Admit(in *AdmissionInput) error
}

// AdmissionFunc adapts a function to Admission.
type AdmissionFunc func(in *AdmissionInput) error

// Admit calls f.
func (f AdmissionFunc) Admit(in *AdmissionInput) error { return f(in) }

// Placer makes placement decisions and reservations atomically: it holds
// the reservation store's lock from reading the open reservations, through
// fit, score and admission checks, to writing the new reservation, so N
// concurrent reserving placements against room for K get exactly min(N, K).
type Placer struct {
	policies   PolicySource
	store      *reservation.Store
	admissions []Admission
}

// NewPlacer returns a Placer over a policy source and a reservation store;
// admissions run, in order, inside every placement's critical section.
func NewPlacer(policies PolicySource, store *reservation.Store, admissions ...Admission) *Placer {
	return &Placer{policies: policies, store: store, admissions: admissions}
}

// Store is the reservation store the placer writes to.
func (pl *Placer) Store() *reservation.Store { return pl.store }

// Place decides where a deployment goes (and reserves when asked).
func (pl *Placer) Place(snap *placement.Snapshot, req placement.Request) (*placement.Decision, error) {
	return pl.PlaceWith(snap, req, DeploymentDecider)
}

// PlaceWith decides with d and, when req.Reserve is set and a server was
// chosen, reserves req.Requirements on it, atomically. A request with an
// idempotency key that reserved before gets that first answer's server,
// score and summary again (Replayed set, the reservation as it is now); the same key with a
// different request is ErrIdempotencyConflict. Without a reservation the
// key only seeds the tie-break, so a retry over the same snapshot gets the
// same server.
//
// A decision with no server chosen is not an error. Errors are invalid
// requests (*FieldError), ErrIdempotencyConflict, an admission's refusal,
// or a failure to persist the reservation.
func (pl *Placer) PlaceWith(snap *placement.Snapshot, req placement.Request, d Decider) (*placement.Decision, error) {
	p := pl.policies.Policy()
	if err := Validate(p, &req); err != nil {
		return nil, err
	}
	if snap == nil {
		return nil, errors.New("no fleet snapshot")
	}
	req = normalize(p, req)
	seed := rand.Uint64()
	if req.IdempotencyKey != "" {
		seed = SeedFromKey(req.IdempotencyKey)
	}
	// The fingerprint (JSON + SHA-256) only matters to what is stored: a
	// non-reserving placement stores nothing, so it skips the cost.
	var fp string
	if req.Reserve {
		fp = fingerprint(&req)
	}

	// Only a reserving placement writes; the others share a read lock and
	// run in parallel.
	run := pl.store.View
	if req.Reserve {
		run = pl.store.Update
	}
	var out *placement.Decision
	err := run(func(tx *reservation.Tx) error {
		if req.Reserve && req.IdempotencyKey != "" {
			if res, answer, prevFP, ok := tx.Lookup(req.IdempotencyKey); ok {
				if prevFP != fp {
					return fmt.Errorf("%w: %s", reservation.ErrIdempotencyConflict, req.IdempotencyKey)
				}
				replay := *answer
				replay.Reservation = &res
				replay.Replayed = true
				out = &replay
				return nil
			}
		}
		open := tx.Open()
		dec := d.Decide(p, snap, &req, open, seed)
		if dec.Chosen == "" {
			out = dec
			return nil
		}
		in := &AdmissionInput{Policy: p, Snapshot: snap, Request: &req, Decision: dec, Open: open}
		for _, a := range pl.admissions {
			if err := a.Admit(in); err != nil {
				return err
			}
		}
		if req.Reserve {
			state := placement.StateActive
			if req.Kind == placement.KindBuild {
				state = placement.StateQueued
			}
			r, err := tx.Insert(placement.Reservation{
				Kind:           req.Kind,
				Server:         dec.Chosen,
				Organization:   req.Organization,
				ApplicationID:  req.ApplicationID,
				Resources:      req.Requirements,
				State:          state,
				IdempotencyKey: req.IdempotencyKey,
				Score:          dec.Score,
				ExpiresAt:      tx.Now().Add(req.TTL),
			}, fp, dec)
			if err != nil {
				return err
			}
			dec.Reservation = &r
		}
		out = dec
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// normalize fills in what a request leaves to the policy, so that two
// requests that mean the same are decided alike and share a fingerprint:
// the strategy, a reservation's TTL, and a deployment's charge (Charge).
// Builds are charged their estimate as given: their CPU is the load
// score's and the build cap's business unless the request names it.
func normalize(p *policy.Policy, r placement.Request) placement.Request {
	if r.Strategy == "" && r.Kind == placement.KindDeployment {
		r.Strategy = p.Scoring.Strategy
	}
	if r.Reserve && r.TTL == 0 {
		r.TTL = p.Reservations.DefaultTTL
	}
	if r.Kind == placement.KindDeployment {
		r.Requirements = fit.Charge(p, r.Requirements)
	}
	return r
}

// Check answers whether one named server can take req now by the decision
// a placement would make: d decides over the same snapshot and open
// reservations (a deployment decider over the server alone, the build
// decider over the build servers) and the server's own line is read. So
// check and place cannot disagree. Check reserves nothing and runs no
// admission (quotas have their own check).
func (pl *Placer) Check(snap *placement.Snapshot, server string, req placement.Request, d Decider) (placement.FitResult, error) {
	p := pl.policies.Policy()
	req.Candidates, req.Reserve, req.TTL, req.IdempotencyKey = []string{server}, false, 0, ""
	if err := Validate(p, &req); err != nil {
		return placement.FitResult{}, err
	}
	if snap == nil {
		return placement.FitResult{}, errors.New("no fleet snapshot")
	}
	req = normalize(p, req)
	var res placement.FitResult
	err := pl.store.View(func(tx *reservation.Tx) error {
		open := tx.Open()
		if r, ok := resultFor(server, d.Decide(p, snap, &req, open, 0)); ok {
			res = r
			return nil
		}
		// Not considered (the build decider and a server that is not a
		// build server): the feasibility pipeline says why.
		res = fit.Server(p, server, snap.Servers[server], req.Kind, req.Requirements, ReservedByServer(open)[server])
		return nil
	})
	return res, err
}

// resultFor reads one server's line of a decision.
func resultFor(server string, d *placement.Decision) (placement.FitResult, bool) {
	for _, r := range d.Ranking {
		if r.Server == server {
			return placement.FitResult{Server: server, Fits: true, Freshness: placement.Fresh, Dimensions: r.Dimensions}, true
		}
	}
	for _, r := range d.Rejected {
		if r.Server == server {
			return placement.FitResult{Server: server, Freshness: r.Freshness, Reasons: r.Reasons, Dimensions: r.Dimensions}, true
		}
	}
	return placement.FitResult{}, false
}

// Confirm records that a reserved deployment runs; the reservation keeps
// counting for the policy's confirm grace at most.
func (pl *Placer) Confirm(id string) (placement.Reservation, error) {
	return pl.store.Confirm(id, pl.policies.Policy().Reservations.ConfirmGrace)
}

// fingerprint identifies what a request asks, so an idempotency key reused
// for a different request is caught.
func fingerprint(r *placement.Request) string {
	if r.Fingerprint != "" {
		sum := sha256.Sum256([]byte(string(r.Kind) + "\x00" + r.Fingerprint))
		return hex.EncodeToString(sum[:16])
	}
	c := slices.Sorted(slices.Values(r.Candidates))
	v := struct {
		Kind       placement.Kind
		Req        placement.Resources
		Candidates []string
		Org, App   string
		Strategy   placement.Strategy
		Reserve    bool
		TTL        time.Duration
	}{r.Kind, r.Requirements, slices.Compact(c), r.Organization, r.ApplicationID, r.Strategy, r.Reserve, r.TTL}
	b, _ := json.Marshal(v) // plain values: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

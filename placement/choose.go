package placement

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"time"
)

// Request asks where something should run.
type Request struct {
	Kind         Kind      `json:"kind"`
	Requirements Resources `json:"requirements"`
	// Candidates restricts the choice to these servers; empty means the
	// whole fleet. A candidate not in the fleet is rejected as
	// server_not_found.
	Candidates    []string `json:"candidates,omitempty"`
	Organization  string   `json:"organization,omitempty"`
	ApplicationID string   `json:"application_id,omitempty"`
	// Strategy overrides the policy's scoring strategy when set.
	Strategy Strategy `json:"strategy,omitempty"`
	// Reserve asks for a reservation on the chosen server.
	Reserve bool `json:"reserve,omitempty"`
	// IdempotencyKey makes retries return the first answer.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// TTL of the reservation; 0 means the policy's default. Not read from
	// JSON as is (nanoseconds): the API parses its own "ttl" form.
	TTL time.Duration `json:"-"`
	// Fingerprint, when set, identifies what was asked for idempotency
	// instead of the fields above. Build placements set it from the
	// caller's own request, because their requirements are derived from an
	// estimate that may change between a request and its retry.
	Fingerprint string `json:"-"`
}

// Validate checks the request against the policy and returns a
// *FieldError naming the first bad field.
func (r *Request) Validate(p *Policy) error {
	switch {
	case !r.Kind.Valid():
		return &FieldError{Field: "kind", Err: fmt.Errorf("must be %q or %q, got %q", KindDeployment, KindBuild, r.Kind)}
	case r.Strategy != "" && !r.Strategy.Valid():
		return &FieldError{Field: "strategy", Err: fmt.Errorf("must be %q or %q, got %q", StrategySpread, StrategyPack, r.Strategy)}
	case r.TTL < 0:
		return &FieldError{Field: "ttl", Err: fmt.Errorf("must not be negative, got %s", r.TTL)}
	case r.TTL > p.Reservations.MaxTTL:
		return &FieldError{Field: "ttl", Err: fmt.Errorf("must be at most %s (reservations.max_ttl), got %s", p.Reservations.MaxTTL, r.TTL)}
	case r.Requirements.CPU < 0 || r.Requirements.Memory < 0 || r.Requirements.Disk < 0:
		return &FieldError{Field: "requirements", Err: fmt.Errorf("must not be negative")}
	}
	for i, c := range r.Candidates {
		if c == "" {
			return &FieldError{Field: fmt.Sprintf("candidates[%d]", i), Err: fmt.Errorf("must not be empty")}
		}
	}
	return nil
}

// Ranked is a server that fits, with its score.
type Ranked struct {
	Server     string         `json:"server"`
	Score      float64        `json:"score"`
	Dimensions []DimensionFit `json:"dimensions"`
}

// Rejected is a server that cannot take the request, and why.
type Rejected struct {
	Server     string         `json:"server"`
	Reasons    []Reason       `json:"reasons"`
	Freshness  Freshness      `json:"freshness,omitempty"`
	Dimensions []DimensionFit `json:"dimensions,omitempty"`
}

// Decision is the answer to a Request.
type Decision struct {
	Kind     Kind     `json:"kind"`
	Strategy Strategy `json:"strategy"`
	// Chosen is the server picked, empty when none fits.
	Chosen string  `json:"chosen,omitempty"`
	Score  float64 `json:"score"`
	// Ranking lists every server that fits, best first (Chosen first).
	Ranking  []Ranked   `json:"ranking"`
	Rejected []Rejected `json:"rejected"`
	// Considered counts the servers looked at (fleet or candidates).
	Considered int `json:"considered"`
	// Summary is the one-line explanation, e.g. "3/12 servers can take this
	// deployment: 5 insufficient memory, 4 metrics stale".
	Summary     string       `json:"summary"`
	Reservation *Reservation `json:"reservation,omitempty"`
	// Replayed is true when an idempotent retry returned an earlier answer.
	Replayed bool `json:"replayed,omitempty"`
}

// Choose ranks the fleet for a request: every considered server goes
// through Fit; those that fit are scored by the strategy. reserved holds
// what open reservations take per server. seed breaks ties: servers within
// scoring.tie_tolerance of the best are ordered by a hash of (seed, name)
// (rendezvous hashing), so identical concurrent requests — which all see
// the same snapshot — spread over equally good servers instead of herding
// onto the one that sorts first, while a given seed always gives the same
// answer. Callers derive seed from the idempotency key when there is one
// (a retry gets the same server) and from a random number otherwise.
func (p *Policy) Choose(snap *Snapshot, req *Request, reserved map[string]Resources, seed uint64) *Decision {
	strategy := req.Strategy
	if strategy == "" {
		strategy = p.Scoring.Strategy
	}
	names := req.Candidates
	if len(names) == 0 {
		names = slices.Collect(maps.Keys(snap.Servers))
	} else {
		names = slices.Clone(names)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	d := &Decision{
		Kind: req.Kind, Strategy: strategy, Considered: len(names),
		Ranking: make([]Ranked, 0, len(names)), Rejected: []Rejected{},
	}

	for _, name := range names {
		if s := snap.Servers[name]; s != nil && !OrganizationAllows(s.Organization, req.Organization) {
			d.Rejected = append(d.Rejected, Rejected{Server: name, Reasons: []Reason{ReasonWrongOrganization}, Freshness: p.FreshnessOf(s)})
			continue
		}
		f := p.FitServer(name, snap.Servers[name], req.Kind, req.Requirements, reserved[name])
		if !f.Fits {
			d.Rejected = append(d.Rejected, Rejected{Server: name, Reasons: f.Reasons, Freshness: f.Freshness, Dimensions: f.Dimensions})
			continue
		}
		d.Ranking = append(d.Ranking, Ranked{Server: name, Score: p.Score(strategy, f.Dimensions), Dimensions: f.Dimensions})
	}
	RankWithTieBreak(d.Ranking, p.Scoring.TieTolerance, seed)
	if len(d.Ranking) > 0 {
		d.Chosen, d.Score = d.Ranking[0].Server, d.Ranking[0].Score
	}
	d.Summary = Summary(len(d.Ranking), d.Considered, req.Kind, d.Rejected)
	return d
}

// RankWithTieBreak sorts ranked servers best first (higher score wins),
// putting the servers within tolerance of the best in the order of a
// (seed, server) hash. Build choice, where lower load is better, negates
// its scores or sorts itself.
func RankWithTieBreak(ranked []Ranked, tolerance float64, seed uint64) {
	// Server names are unique, so (score, name) is a total order and an
	// unstable sort is deterministic.
	slices.SortFunc(ranked, func(a, b Ranked) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), strings.Compare(a.Server, b.Server))
	})
	if len(ranked) < 2 {
		return
	}
	n := 1
	for n < len(ranked) && ranked[0].Score-ranked[n].Score <= tolerance {
		n++
	}
	if n < 2 {
		return
	}
	type keyed struct {
		hash uint64
		r    Ranked
	}
	band := make([]keyed, n)
	for i := range band {
		band[i] = keyed{tieHash(seed, ranked[i].Server), ranked[i]}
	}
	slices.SortFunc(band, func(a, b keyed) int {
		return cmp.Or(cmp.Compare(b.hash, a.hash), strings.Compare(a.r.Server, b.r.Server))
	})
	for i := range band {
		ranked[i] = band[i].r
	}
}

func tieHash(seed uint64, server string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(seed >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte(server))
	// fnv's low bits mix poorly for short inputs; finish with splitmix64.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// SeedFromKey derives a tie-break seed from an idempotency key.
func SeedFromKey(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return h.Sum64()
}

// Summary is the one-line explanation of a decision, in the Kubernetes
// scheduler's manner: "3/12 servers can take this deployment: 5
// insufficient memory, 4 metrics stale". A server refused for several
// reasons counts under each. Reasons are listed most frequent first.
func Summary(fit, considered int, kind Kind, rejected []Rejected) string {
	s := fmt.Sprintf("%d/%d servers can take this %s", fit, considered, kind)
	counts := map[Reason]int{}
	for _, r := range rejected {
		for _, reason := range r.Reasons {
			counts[reason]++
		}
	}
	if len(counts) == 0 {
		return s
	}
	reasons := slices.SortedFunc(maps.Keys(counts), func(a, b Reason) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), strings.Compare(string(a), string(b)))
	})
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%d %s", counts[r], r.Text())
	}
	return s + ": " + strings.Join(parts, ", ")
}

// OrganizationAllows reports whether a server of serverOrg may take a
// placement for requestOrg: an organization's deployments go to its own
// servers or to shared servers (no organization); a placement that names no
// organization may go anywhere.
func OrganizationAllows(serverOrg, requestOrg string) bool {
	return requestOrg == "" || serverOrg == "" || serverOrg == requestOrg
}

package schedule

import (
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/fit"
	"github.com/berth-dev/berth/placement/policy"

	"cmp"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// MinReservationTTL is the shortest reservation lifetime a request may ask
// for. A reservation must outlive the answer that carries it and the
// deployer's next call (confirm, start), and a build start must hold its
// slot while the build runs; a TTL below this is a unit mistake (ms for s).
const MinReservationTTL = 10 * time.Second

// Validate checks a request against the policy and returns a
// *FieldError naming the first bad field.
func Validate(p *policy.Policy, r *placement.Request) error {
	switch {
	case !r.Kind.Valid():
		return &placement.FieldError{Field: "kind", Err: fmt.Errorf("must be %q or %q, got %q", placement.KindDeployment, placement.KindBuild, r.Kind)}
	case r.Strategy != "" && !r.Strategy.Valid():
		return &placement.FieldError{Field: "strategy", Err: fmt.Errorf("must be %q or %q, got %q", placement.StrategySpread, placement.StrategyPack, r.Strategy)}
	case r.TTL < 0 || r.TTL > 0 && r.TTL < MinReservationTTL:
		return &placement.FieldError{Field: "ttl", Err: fmt.Errorf("must be at least %s, got %s", MinReservationTTL, r.TTL)}
	case r.TTL > p.Reservations.MaxTTL:
		return &placement.FieldError{Field: "ttl", Err: fmt.Errorf("must be at most %s (reservations.max_ttl), got %s", p.Reservations.MaxTTL, r.TTL)}
	case r.Requirements.CPU < 0 || r.Requirements.Memory < 0 || r.Requirements.Disk < 0:
		return &placement.FieldError{Field: "requirements", Err: fmt.Errorf("must not be negative")}
	}
	if r.Candidates != nil && len(r.Candidates) == 0 {
		return &placement.FieldError{Field: "candidates", Err: fmt.Errorf("must not be empty (leave it out to consider the whole fleet)")}
	}
	for i, c := range r.Candidates {
		if c == "" {
			return &placement.FieldError{Field: fmt.Sprintf("candidates[%d]", i), Err: fmt.Errorf("must not be empty")}
		}
	}
	// These are stored with a reservation and listed back: bound them.
	for _, f := range []struct{ field, value string }{
		{"organization", r.Organization}, {"application_id", r.ApplicationID}, {"idempotency_key", r.IdempotencyKey},
	} {
		if err := placement.ValidateIdentifier(f.value); err != nil {
			return &placement.FieldError{Field: f.field, Err: err}
		}
	}
	return nil
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
func Choose(p *policy.Policy, snap *placement.Snapshot, req *placement.Request, reserved map[string]placement.Resources, seed uint64) *placement.Decision {
	strategy := req.Strategy
	if strategy == "" {
		strategy = p.Scoring.Strategy
	}
	d := &placement.Decision{Kind: req.Kind, Strategy: strategy, Rejected: []placement.Rejected{}}
	var dims []placement.DimensionFit // every fitted server's dimensions, one array
	consider := func(name string, s *placement.ServerState) {
		if s != nil && !OrganizationAllows(s.Organization, req.Organization) {
			d.Rejected = append(d.Rejected, placement.Rejected{Server: name, Reasons: []placement.Reason{placement.ReasonWrongOrganization}, Freshness: fit.FreshnessOf(p, s)})
			return
		}
		var f placement.FitResult
		f, dims = fit.AppendServer(p, name, s, req.Kind, req.Requirements, reserved[name], dims)
		if !f.Fits {
			d.Rejected = append(d.Rejected, placement.Rejected{Server: name, Reasons: f.Reasons, Freshness: f.Freshness, Dimensions: f.Dimensions})
			return
		}
		d.Ranking = append(d.Ranking, placement.Ranked{Server: name, Score: fit.Score(p, strategy, f.Dimensions), Dimensions: f.Dimensions})
	}
	if len(req.Candidates) == 0 {
		// The whole fleet, in map order: nothing here depends on it. The
		// ranking is sorted below by (score, name), a total order, and the
		// rejections are sorted by name, as listing the servers in name
		// order would give them, without sorting every name per decision.
		d.Considered = len(snap.Servers)
		d.Ranking = make([]placement.Ranked, 0, len(snap.Servers))
		dims = make([]placement.DimensionFit, 0, 3*len(snap.Servers))
		for name, s := range snap.Servers {
			consider(name, s)
		}
		slices.SortFunc(d.Rejected, func(a, b placement.Rejected) int { return strings.Compare(a.Server, b.Server) })
	} else {
		names := slices.Clone(req.Candidates)
		slices.Sort(names)
		names = slices.Compact(names)
		d.Considered = len(names)
		d.Ranking = make([]placement.Ranked, 0, len(names))
		dims = make([]placement.DimensionFit, 0, 3*len(names))
		for _, name := range names {
			consider(name, snap.Servers[name])
		}
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
// its scores or sorts itself. It returns how many servers, at the head of
// ranked, the hash ordered: 0 or 1 when no tie-break decided.
func RankWithTieBreak(ranked []placement.Ranked, tolerance float64, seed uint64) int {
	// Server names are unique, so (score, name) is a total order and an
	// unstable sort is deterministic.
	keys := make([]rankKey, len(ranked))
	for i := range ranked {
		keys[i] = rankKey{float64bits(ranked[i].Score), int32(i)}
	}
	sortKeys(ranked, keys)
	if len(ranked) < 2 {
		return len(ranked)
	}
	n := 1
	for n < len(ranked) && ranked[0].Score-ranked[n].Score <= tolerance {
		n++
	}
	if n < 2 {
		return n
	}
	band := keys[:n]
	for i := range band {
		band[i] = rankKey{tieHash(seed, ranked[i].Server), int32(i)}
	}
	sortKeys(ranked[:n], band)
	return n
}

// rankKey is what RankWithTieBreak sorts instead of the Ranked values
// themselves: a 16-byte key holding no pointers, so the sort swaps neither
// 48-byte structs nor pointers (whose writes cost GC write barriers), and
// compares integers first. key orders best first (descending); ties fall
// back to the values.
type rankKey struct {
	key uint64
	idx int32
}

// float64bits maps a score to a uint64 that sorts like the score (the usual
// order-preserving map: flip every bit of a negative number, set the sign
// bit of a positive one). NaN, never a score in practice, gets 0, the
// lowest, as cmp.Compare puts NaN below every number.
func float64bits(f float64) uint64 {
	if f != f {
		return 0
	}
	b := math.Float64bits(f + 0) // +0: -0 and 0 are equal scores
	if b>>63 == 1 {
		return ^b
	}
	return b | 1<<63
}

// sortKeys sorts ranked by key descending, then by server name, through
// the keys, and permutes ranked to match.
func sortKeys(ranked []placement.Ranked, keys []rankKey) {
	slices.SortFunc(keys, func(a, b rankKey) int {
		if a.key != b.key {
			if a.key > b.key {
				return -1
			}
			return 1
		}
		return strings.Compare(ranked[a.idx].Server, ranked[b.idx].Server)
	})
	// Permute in place, cycle by cycle: position i takes the value at
	// keys[i].idx; a placed position is marked with idx −1.
	for i := range keys {
		if keys[i].idx < 0 {
			continue
		}
		first := ranked[i]
		j := i
		for {
			k := int(keys[j].idx)
			keys[j].idx = -1
			if k == i {
				ranked[j] = first
				break
			}
			ranked[j] = ranked[k]
			j = k
		}
	}
}

func tieHash(seed uint64, server string) uint64 {
	// FNV-1a over the seed's 8 little-endian bytes, then the name: what
	// hash/fnv computes, without its allocations (this runs for every
	// server in the tie band of every decision).
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	x := uint64(offset64)
	for i := range 8 {
		x ^= uint64(byte(seed >> (8 * i)))
		x *= prime64
	}
	for i := 0; i < len(server); i++ {
		x ^= uint64(server[i])
		x *= prime64
	}
	// fnv's low bits mix poorly for short inputs; finish with splitmix64.
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
func Summary(fit, considered int, kind placement.Kind, rejected []placement.Rejected) string {
	s := fmt.Sprintf("%d/%d servers can take this %s", fit, considered, kind)
	counts := map[placement.Reason]int{}
	for _, r := range rejected {
		for _, reason := range r.Reasons {
			counts[reason]++
		}
	}
	if len(counts) == 0 {
		return s
	}
	reasons := slices.SortedFunc(maps.Keys(counts), func(a, b placement.Reason) int {
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

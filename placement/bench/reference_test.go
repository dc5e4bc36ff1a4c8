package bench

import (
	"github.com/berth-dev/berth/placement/fit"
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/schedule"

	"cmp"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/placement"
)

// referenceChoose is Policy.Choose written the straightforward way (as it
// was before it was optimised for large fleets): sort every name, fit each
// server on its own, sort the Ranked values, break ties with hash/fnv. The
// optimised Choose must give exactly the same decisions.
func referenceChoose(p *policy.Policy, snap *placement.Snapshot, req *placement.Request, reserved map[string]placement.Resources, seed uint64) *placement.Decision {
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
	d := &placement.Decision{
		Kind: req.Kind, Strategy: strategy, Considered: len(names),
		Ranking: make([]placement.Ranked, 0, len(names)), Rejected: []placement.Rejected{},
	}
	for _, name := range names {
		if s := snap.Servers[name]; s != nil && !schedule.OrganizationAllows(s.Organization, req.Organization) {
			d.Rejected = append(d.Rejected, placement.Rejected{Server: name, Reasons: []placement.Reason{placement.ReasonWrongOrganization}, Freshness: fit.FreshnessOf(p, s)})
			continue
		}
		f := fit.Server(p, name, snap.Servers[name], req.Kind, req.Requirements, reserved[name])
		if !f.Fits {
			d.Rejected = append(d.Rejected, placement.Rejected{Server: name, Reasons: f.Reasons, Freshness: f.Freshness, Dimensions: f.Dimensions})
			continue
		}
		d.Ranking = append(d.Ranking, placement.Ranked{Server: name, Score: fit.Score(p, strategy, f.Dimensions), Dimensions: f.Dimensions})
	}
	referenceRank(d.Ranking, p.Scoring.TieTolerance, seed)
	if len(d.Ranking) > 0 {
		d.Chosen, d.Score = d.Ranking[0].Server, d.Ranking[0].Score
	}
	d.Summary = schedule.Summary(len(d.Ranking), d.Considered, req.Kind, d.Rejected)
	return d
}

func referenceRank(ranked []placement.Ranked, tolerance float64, seed uint64) {
	slices.SortFunc(ranked, func(a, b placement.Ranked) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), strings.Compare(a.Server, b.Server))
	})
	n := 1
	for n < len(ranked) && ranked[0].Score-ranked[n].Score <= tolerance {
		n++
	}
	if n < 2 {
		return
	}
	type keyed struct {
		hash uint64
		r    placement.Ranked
	}
	band := make([]keyed, n)
	for i := range band {
		band[i] = keyed{referenceTieHash(seed, ranked[i].Server), ranked[i]}
	}
	slices.SortFunc(band, func(a, b keyed) int {
		return cmp.Or(cmp.Compare(b.hash, a.hash), strings.Compare(a.r.Server, b.r.Server))
	})
	for i := range band {
		ranked[i] = band[i].r
	}
}

func referenceTieHash(seed uint64, server string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(seed >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte(server))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// TestChooseMatchesReference compares Choose with the reference over random
// fleets (stale, missing, absent and build servers, organizations, equal
// scores, wide tie tolerances), random requests, candidates and
// reservations: every field of every decision must be the same.
func TestChooseMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	for trial := range 400 {
		n := 1 + rng.IntN(300)
		snap := &placement.Snapshot{Taken: now, Servers: map[string]*placement.ServerState{}}
		for i := range n {
			name := fmt.Sprintf("s%03d", i)
			if rng.IntN(15) == 0 {
				snap.Servers[name] = nil
				continue
			}
			cores := float64([]int{1, 2, 4, 8}[rng.IntN(4)])
			st := &placement.ServerState{
				Name: name, Role: []string{"app", "app", "app", "build", ""}[rng.IntN(5)],
				Organization: []string{"", "a", "b"}[rng.IntN(3)],
				LastSeen:     now.Add(-time.Duration(rng.IntN(1200)) * time.Second),
				CPU:          placement.CPUState{Cores: cores, PeakUtilisation: rng.Float64()},
				Memory:       placement.MemoryState{TotalBytes: cores * 2e9, PeakUsedBytes: rng.Float64() * cores * 2e9},
				Disk:         placement.DiskState{SizeBytes: 1e11, AvailableBytes: rng.Float64() * 1e11, ThresholdRatio: rng.Float64()},
			}
			if rng.IntN(4) == 0 { // identical servers: equal scores
				st.CPU.PeakUtilisation, st.Memory.PeakUsedBytes, st.Disk.AvailableBytes = 0.1, 0.1*cores*2e9, 5e10
			}
			st.Age = now.Sub(st.LastSeen)
			if rng.IntN(10) == 0 {
				st.Missing, st.CapacityMissing = []string{"server:node_cpus:count"}, true
			}
			snap.Servers[name] = st
		}
		p := policy.Default()
		if rng.IntN(2) == 0 {
			p.Scoring.TieTolerance = float64(rng.IntN(50))
		}
		req := &placement.Request{
			Kind: []placement.Kind{placement.KindDeployment, placement.KindBuild}[rng.IntN(2)],
			Requirements: placement.Resources{
				CPU: placement.Cores(rng.Float64() * 2), Memory: placement.Bytes(rng.IntN(4e9)), Disk: placement.Bytes(rng.IntN(2e10)),
			},
			Organization: []string{"", "a", "b"}[rng.IntN(3)],
			Strategy:     []placement.Strategy{"", placement.StrategyPack, placement.StrategySpread}[rng.IntN(3)],
		}
		if rng.IntN(3) == 0 {
			for range 1 + rng.IntN(20) {
				req.Candidates = append(req.Candidates, fmt.Sprintf("s%03d", rng.IntN(n+5)))
			}
		}
		reserved := map[string]placement.Resources{}
		for range rng.IntN(20) {
			reserved[fmt.Sprintf("s%03d", rng.IntN(n))] = placement.Resources{CPU: placement.Cores(rng.Float64()), Memory: placement.Bytes(rng.IntN(1e9))}
		}
		seed := rng.Uint64()
		want, err := json.Marshal(referenceChoose(p, snap, req, reserved, seed))
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(schedule.Choose(p, snap, req, reserved, seed))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("trial %d (%d servers, %+v): Choose differs from the reference\ngot  %s\nwant %s", trial, n, *req, got, want)
		}
	}
}

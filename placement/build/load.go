package build

import (
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/fit"
	"github.com/berth-dev/berth/placement/policy"

	"math"
	"slices"
)

// Load is one build server's load as build placement sees it.
type Load struct {
	Server    string              `json:"server"`
	Freshness placement.Freshness `json:"freshness"`
	// LastKnown is true when figures below are the server's last-known
	// ones: it stopped publishing them within the last hour. Such a server
	// takes no build (it is not fresh) and is never shown idle for it.
	LastKnown bool `json:"last_known"`
	// CPUPercent and MemoryPercent are the current (5m) CPU utilisation
	// and the share of memory in use, 0..100.
	CPUPercent    float64 `json:"cpu_percent"`
	MemoryPercent float64 `json:"memory_percent"`
	// ActiveBuilds are running builds: the build containers the exporter
	// sees, plus started build reservations that metrics cannot show yet.
	ActiveBuilds int `json:"active_builds"`
	// ActiveInMetrics is berth_builds_active (containers with role="build").
	ActiveInMetrics int `json:"active_in_metrics"`
	// StartedReservations are build reservations marked started.
	StartedReservations int `json:"started_reservations"`
	// QueuedBuilds are build reservations not started yet.
	QueuedBuilds int `json:"queued_builds"`
	// ConcurrentBuilds is the server's cap (policy, per-server override).
	ConcurrentBuilds int `json:"concurrent_builds"`
	// FreeSlots is ConcurrentBuilds − ActiveBuilds − QueuedBuilds, at
	// least 0: a queued build holds the slot it will start in.
	FreeSlots int `json:"free_slots"`
	// Score is the load score, lower is better.
	Score float64 `json:"load_score"`
	// Reserved is what open reservations hold on the server.
	Reserved placement.Resources `json:"reserved"`
}

// Full reports whether the server has no slot for another build.
func (l *Load) Full() bool { return l.ActiveBuilds+l.QueuedBuilds >= l.ConcurrentBuilds }

// BuildScore is the load score of a build server, lower is better:
// cpu% × cpu + memory% × memory + queued × queue + active × active,
// rounded to two decimals so answers are stable to read and compare.
func Score(w policy.BuildWeights, cpuPercent, memoryPercent float64, queued, active int) float64 {
	s := cpuPercent*w.CPU + memoryPercent*w.Memory + float64(queued)*w.Queue + float64(active)*w.Active
	return math.Round(s*100) / 100
}

// LoadOf computes the load of build server s given the open
// reservations (of every server; only s's build reservations count).
//
// Running builds: the exporter counts build containers
// (s.Containers.BuildsActive), which include builds Berth never placed. A
// started reservation is in those metrics once a sample newer than its
// start exists; one started after the server's newest sample (LastSeen)
// cannot be, so it is added. The metrics count is never taken below the
// started reservations it should include (a missed container must not make
// room that is not there): active = max(metrics, started and visible) +
// started and not yet visible.
func LoadOf(p *policy.Policy, s *placement.ServerState, open []placement.Reservation) Load {
	l := Load{
		Server:           s.Name,
		Freshness:        fit.FreshnessOf(p, s),
		LastKnown:        len(s.LastKnown) > 0,
		CPUPercent:       round2(100 * s.CPU.Utilisation),
		ActiveInMetrics:  s.Containers.BuildsActive,
		ConcurrentBuilds: p.Builds.ConcurrentBuildsFor(s.Name),
	}
	if s.Memory.TotalBytes > 0 {
		l.MemoryPercent = round2(100 * (1 - s.Memory.AvailableBytes/s.Memory.TotalBytes))
	}
	visible, notVisible := 0, 0
	for _, r := range open {
		if r.Server != s.Name {
			continue
		}
		l.Reserved = l.Reserved.Add(r.Resources)
		if r.Kind != placement.KindBuild {
			continue
		}
		switch r.State {
		case placement.StateQueued:
			l.QueuedBuilds++
		case placement.StateActive:
			l.StartedReservations++
			if r.StartedAt != nil && r.StartedAt.After(s.LastSeen) {
				notVisible++
			} else {
				visible++
			}
		}
	}
	l.ActiveBuilds = max(l.ActiveInMetrics, visible) + notVisible
	l.FreeSlots = max(l.ConcurrentBuilds-l.ActiveBuilds-l.QueuedBuilds, 0)
	l.Score = Score(p.Builds.Weights, l.CPUPercent, l.MemoryPercent, l.QueuedBuilds, l.ActiveBuilds)
	return l
}

// Loads is the load of every build server (role="build") in the
// snapshot, sorted by server name.
func Loads(p *policy.Policy, snap *placement.Snapshot, open []placement.Reservation) []Load {
	out := []Load{}
	for _, name := range Servers(snap) {
		out = append(out, LoadOf(p, snap.Servers[name], open))
	}
	return out
}

// Servers lists the names of the snapshot's build servers, sorted.
func Servers(snap *placement.Snapshot) []string {
	var names []string
	for name, s := range snap.Servers {
		if s.Role == placement.RoleBuild {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func round2(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*100) / 100
}

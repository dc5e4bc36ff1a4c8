package build

import (
	"maps"

	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/policy"

	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"
)

// Build packs, as Coolify names them (an application's build_pack).
const (
	BuildPackNixpacks      = "nixpacks"
	BuildPackStatic        = "static"
	BuildPackDockerfile    = "dockerfile"
	BuildPackDockerCompose = "dockercompose"
	BuildPackDockerImage   = "dockerimage"
)

// BuildPacks lists the known build packs.
var BuildPacks = []string{BuildPackNixpacks, BuildPackStatic, BuildPackDockerfile, BuildPackDockerCompose, BuildPackDockerImage}

// Estimate sources.
const (
	EstimateFromProfile = "profile"
	EstimateFromHistory = "history"
)

// HistoryBuilds is how many of an application's most recent finished
// builds an estimate from history looks at.
const HistoryBuilds = 10

// maxRepositoryMB bounds repository_size_mb (10 TB): larger is a mistake.
const maxRepositoryMB = 10_000_000

// EstimateRequest is what an estimate is asked from. Every field is
// optional.
type EstimateRequest struct {
	ApplicationID string
	BuildPack     string
	// Profile names one of builds.profiles; empty: builds.default_profile.
	Profile string
	// RepositorySizeMB is the repository size in MB; nil: unknown.
	RepositorySizeMB *float64
}

// Validate checks the request against the policy, naming the bad field.
func (r *EstimateRequest) Validate(p *policy.Policy) error {
	if err := placement.ValidateIdentifier(r.ApplicationID); err != nil {
		return &placement.FieldError{Field: "application_id", Err: err}
	}
	if r.BuildPack != "" && !slices.Contains(BuildPacks, r.BuildPack) {
		return &placement.FieldError{Field: "build_pack", Err: fmt.Errorf("unknown build pack %q (want one of %s)", r.BuildPack, strings.Join(BuildPacks, ", "))}
	}
	if r.Profile != "" {
		if _, ok := p.Builds.Profiles[r.Profile]; !ok {
			return &placement.FieldError{Field: "profile", Err: fmt.Errorf("unknown profile %q (builds.profiles has %s)", r.Profile, strings.Join(slices.Sorted(maps.Keys(p.Builds.Profiles)), ", "))}
		}
	}
	if m := r.RepositorySizeMB; m != nil && (math.IsNaN(*m) || *m < 0 || *m > maxRepositoryMB) {
		return &placement.FieldError{Field: "repository_size_mb", Err: fmt.Errorf("must be between 0 and %d, got %g", maxRepositoryMB, *m)}
	}
	return nil
}

// Estimate is how heavy and how long a build is expected to be.
type Estimate struct {
	// Source is "profile" (the policy's profile and adjustments) or
	// "history" (the application's own past builds).
	Source  string `json:"source"`
	Profile string `json:"profile"`
	// BuildPack is the request's build pack, if given.
	BuildPack string `json:"build_pack,omitempty"`
	// HistoryBuilds is the number of past builds the estimate comes from
	// (0 for a profile estimate).
	HistoryBuilds int `json:"history_builds"`
	// CPUPercent is the share of one build server's CPU the build uses.
	CPUPercent float64         `json:"cpu_percent"`
	Memory     placement.Bytes `json:"memory"`
	Disk       placement.Bytes `json:"disk"`
	Duration   time.Duration   `json:"-"`
	// DurationSeconds is Duration for JSON.
	DurationSeconds float64 `json:"duration_seconds"`
	// Adjustments lists the policy adjustments applied to the profile.
	Adjustments []Adjustment `json:"adjustments"`
	// HistoryError says why history could not be used (Prometheus
	// failed); the estimate then comes from the profile.
	HistoryError string `json:"history_error,omitempty"`
}

// Adjustment is one policy adjustment applied to a profile.
type Adjustment struct {
	// Name is the policy key under builds.adjustments.
	Name      string  `json:"name"`
	Factor    float64 `json:"factor"`
	AppliedTo string  `json:"applied_to"` // memory | duration
}

// ProfileEstimate is the estimate from the policy alone: the request's
// profile (or builds.default_profile), then the adjustments — Dockerfile
// build packs × dockerfile_memory_factor memory, repositories larger than
// large_repository_mb × large_repository_duration_factor duration.
func ProfileEstimate(p *policy.Policy, req EstimateRequest) (Estimate, error) {
	if err := req.Validate(p); err != nil {
		return Estimate{}, err
	}
	name := req.Profile
	if name == "" {
		name = p.Builds.DefaultProfile
	}
	prof := p.Builds.Profiles[name]
	e := Estimate{
		Source:      EstimateFromProfile,
		Profile:     name,
		BuildPack:   req.BuildPack,
		CPUPercent:  prof.CPUPercent,
		Memory:      prof.Memory,
		Disk:        prof.Disk,
		Duration:    prof.Duration,
		Adjustments: []Adjustment{},
	}
	a := p.Builds.Adjustments
	if req.BuildPack == BuildPackDockerfile {
		e.Memory = placement.Bytes(math.Round(float64(e.Memory) * a.DockerfileMemoryFactor))
		e.Adjustments = append(e.Adjustments, Adjustment{"dockerfile_memory_factor", a.DockerfileMemoryFactor, "memory"})
	}
	if req.RepositorySizeMB != nil && *req.RepositorySizeMB > a.LargeRepositoryMB {
		e.Duration = time.Duration(math.Round(float64(e.Duration) * a.LargeRepositoryDurationFactor))
		e.Adjustments = append(e.Adjustments, Adjustment{"large_repository_duration_factor", a.LargeRepositoryDurationFactor, "duration"})
	}
	e.DurationSeconds = e.Duration.Seconds()
	return e, nil
}

// Finished is a build this service placed that started and ended:
// the key to its metrics, since build containers carry no application
// label.
type Finished struct {
	ID            string    `json:"id"`
	ApplicationID string    `json:"application_id"`
	Server        string    `json:"server"`
	StartedAt     time.Time `json:"started_at"`
	EndedAt       time.Time `json:"ended_at"`
	// Usage is what Prometheus saw of the build's container, looked up once
	// when it finished (it cannot change afterwards); zero when none was
	// found or the lookup failed, and then estimates ask Prometheus again.
	Usage Usage `json:"usage,omitzero"`
}

// Usage is what Prometheus saw of one build.
type Usage struct {
	// PeakMemoryBytes is the peak working set of the build's container(s).
	PeakMemoryBytes float64 `json:"peak_memory_bytes"`
	// CPUSeconds is the CPU time they used.
	CPUSeconds float64 `json:"cpu_seconds"`
	// ServerCores is the build server's CPU count, to turn CPU time into a
	// share of the server.
	ServerCores float64 `json:"server_cores"`
}

// known reports whether u holds a lookup's result (a build container was
// found: its peak working set is never zero).
func (u Usage) known() bool { return u.PeakMemoryBytes > 0 }

// History looks up what Prometheus holds about a finished build.
// placement/promsource implements it over PromQL.
type History interface {
	// BuildUsage returns the build's usage; ok is false when Prometheus
	// holds no build container for it.
	BuildUsage(ctx context.Context, b Finished) (u Usage, ok bool, err error)
}

// FinishedBuilds lists an application's finished builds, newest first.
type FinishedBuilds interface {
	RecentBuilds(applicationID string, n int) []Finished
}

// HistoryEstimate refines base with past builds of the same application:
// memory is the highest peak working set seen, CPU the highest average
// share of the server, duration the median duration; disk stays the
// profile's (no per-build disk signal exists). Adjustments are dropped:
// the history already shows the build pack's and repository's effect.
// builds[i] goes with usages[i]; a usage without memory or a build without
// a positive duration is skipped. With no usable build, base is returned.
func HistoryEstimate(base Estimate, builds []Finished, usages []Usage) Estimate {
	var (
		n         int
		peak, cpu float64
		durations []time.Duration
	)
	for i, b := range builds {
		if i >= len(usages) {
			break
		}
		u := usages[i]
		d := b.EndedAt.Sub(b.StartedAt)
		if u.PeakMemoryBytes <= 0 || d <= 0 {
			continue
		}
		n++
		peak = math.Max(peak, u.PeakMemoryBytes)
		if u.ServerCores > 0 {
			cpu = math.Max(cpu, 100*u.CPUSeconds/d.Seconds()/u.ServerCores)
		}
		durations = append(durations, d)
	}
	if n == 0 {
		return base
	}
	e := base
	e.Source = EstimateFromHistory
	e.HistoryBuilds = n
	e.Memory = placement.Bytes(math.Ceil(peak))
	if cpu > 0 {
		e.CPUPercent = math.Min(round2(cpu), 100)
	}
	slices.Sort(durations)
	mid := len(durations) / 2
	e.Duration = durations[mid]
	if len(durations)%2 == 0 {
		e.Duration = (durations[mid-1] + durations[mid]) / 2
	}
	e.Duration = e.Duration.Round(time.Second)
	e.DurationSeconds = e.Duration.Seconds()
	e.Adjustments = []Adjustment{}
	return e
}

// Estimator estimates builds from the policy and, for an application
// with finished builds whose metrics Prometheus still holds, from those.
type Estimator struct {
	builds  FinishedBuilds
	history History
	logger  *slog.Logger
}

// NewEstimator returns an estimator. builds or history nil: profile
// estimates only.
func NewEstimator(builds FinishedBuilds, history History, logger *slog.Logger) *Estimator {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Estimator{builds: builds, history: history, logger: logger}
}

// Estimate answers the estimate for req. A request error is a
// *FieldError. When Prometheus fails the estimate falls back to the
// profile, says so in HistoryError, and historyErr is returned too so the
// caller can count it; it is not a request failure.
func (e *Estimator) Estimate(ctx context.Context, p *policy.Policy, req EstimateRequest) (est Estimate, historyErr error, err error) {
	base, err := ProfileEstimate(p, req)
	if err != nil {
		return Estimate{}, nil, err
	}
	if e == nil || e.builds == nil || e.history == nil || req.ApplicationID == "" {
		return base, nil, nil
	}
	past := e.builds.RecentBuilds(req.ApplicationID, HistoryBuilds)
	if len(past) == 0 {
		return base, nil, nil
	}
	usages := make([]Usage, len(past))
	for i, b := range past {
		if b.Usage.known() {
			usages[i] = b.Usage
			continue
		}
		u, ok, err := e.history.BuildUsage(ctx, b)
		if err != nil {
			e.logger.Warn("build history lookup failed, estimating from the profile", "application_id", req.ApplicationID, "build", b.ID, "err", err)
			base.HistoryError = err.Error()
			return base, err, nil
		}
		if ok {
			usages[i] = u
		}
	}
	return HistoryEstimate(base, past, usages), nil, nil
}

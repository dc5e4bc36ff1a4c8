package placement

import (
	"fmt"
	"strings"
	"time"
)

// Reason is a machine-readable code saying why a server cannot take a
// placement. Codes are part of the API: add, never rename.
type Reason string

// Reason codes.
const (
	ReasonInsufficientCPU    Reason = "insufficient_cpu"
	ReasonInsufficientMemory Reason = "insufficient_memory"
	// ReasonInsufficientDisk: the filesystem cannot physically hold the request.
	ReasonInsufficientDisk Reason = "insufficient_disk"
	// ReasonDiskThreshold: it could hold it, but the server would end above
	// its own disk threshold (or already is).
	ReasonDiskThreshold Reason = "disk_threshold"
	// ReasonMetricsStale: the server's newest sample is older than
	// freshness.fresh.
	ReasonMetricsStale Reason = "metrics_stale"
	// ReasonMetricsMissing: older than freshness.stale, never seen, or a
	// signal fit needs has no value.
	ReasonMetricsMissing Reason = "metrics_missing"
	// ReasonServerNotFound: a named server (check, candidates) is not in
	// the fleet.
	ReasonServerNotFound Reason = "server_not_found"
	// ReasonWrongRole: build servers never take deployments, and only build
	// servers take builds.
	ReasonWrongRole Reason = "wrong_role"
	// ReasonAtBuildCapacity: the build server runs as many builds as its cap.
	ReasonAtBuildCapacity Reason = "at_build_capacity"
	// ReasonWrongOrganization: the placement names an organization and the
	// server belongs to another one. Servers without an organization are
	// shared and take anyone's deployments.
	ReasonWrongOrganization Reason = "wrong_organization"
)

// Text is the code as words, for summaries: "insufficient memory".
func (r Reason) Text() string { return strings.ReplaceAll(string(r), "_", " ") }

// Kind is what is being placed.
type Kind string

// Placement kinds.
const (
	KindDeployment Kind = "deployment"
	KindBuild      Kind = "build"
)

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k == KindDeployment || k == KindBuild }

// Server roles as published in berth_server_info.
const (
	RoleApp   = "app"
	RoleBuild = "build"
)

// RoleAllows reports whether a server of role may take a placement of kind:
// build servers take builds only (Coolify never deploys to them); every
// other role takes deployments only.
func RoleAllows(role string, kind Kind) bool {
	if kind == KindBuild {
		return role == RoleBuild
	}
	return role != RoleBuild
}

// Freshness is how current a server's data is.
type Freshness string

// Freshness states.
const (
	Fresh   Freshness = "fresh"
	Stale   Freshness = "stale"
	Missing Freshness = "missing"
)

// Dimension is a resource dimension.
type Dimension string

// Dimensions, in the order results list them.
const (
	DimensionCPU    Dimension = "cpu"
	DimensionMemory Dimension = "memory"
	DimensionDisk   Dimension = "disk"
)

// DimensionFit explains one dimension of a fit. CPU is in cores, memory
// and disk in bytes.
type DimensionFit struct {
	Dimension Dimension `json:"dimension"`
	Requested float64   `json:"requested"`
	// Available is what placements may still take: usable − used −
	// reserved, never below zero.
	Available float64 `json:"available"`
	Capacity  float64 `json:"capacity"`
	// Usable is capacity × the ceiling (max utilisation, and for disk the
	// server's threshold).
	Usable float64 `json:"usable"`
	// Used is max(Observed, Allocated): the recent peak or the declared
	// limits, whichever is higher.
	Used      float64 `json:"used"`
	Observed  float64 `json:"observed"`
	Allocated float64 `json:"allocated"`
	Reserved  float64 `json:"reserved"`
	Fits      bool    `json:"fits"`
	Reason    Reason  `json:"reason,omitempty"`
}

// FitResult is whether one server can take a request, and why not.
type FitResult struct {
	Server    string    `json:"server"`
	Fits      bool      `json:"fits"`
	Freshness Freshness `json:"freshness,omitempty"`
	Reasons   []Reason  `json:"reasons,omitempty"`
	// Dimensions is empty when the server was refused before resources
	// were compared (unknown, wrong role, not fresh).
	Dimensions []DimensionFit `json:"dimensions,omitempty"`
}

// Dimension returns the result for d, or nil.
func (f *FitResult) Dimension(d Dimension) *DimensionFit {
	for i := range f.Dimensions {
		if f.Dimensions[i].Dimension == d {
			return &f.Dimensions[i]
		}
	}
	return nil
}

// ReservationState is where a reservation is in its life.
type ReservationState string

// Reservation states, as in berth_placement_reservations{state}.
const (
	// StateQueued: a build reserved but not started.
	StateQueued ReservationState = "queued"
	// StateActive: a deployment's reservation, or a started build.
	StateActive ReservationState = "active"
)

// Reservation is capacity held on a server for a placement that metrics do
// not show yet. It counts in every fit until released, expired, or (once
// confirmed) seen in metrics.
type Reservation struct {
	ID             string           `json:"id"`
	Kind           Kind             `json:"kind"`
	Server         string           `json:"server"`
	Organization   string           `json:"organization,omitempty"`
	ApplicationID  string           `json:"application_id,omitempty"`
	Resources      Resources        `json:"resources"`
	State          ReservationState `json:"state"`
	IdempotencyKey string           `json:"idempotency_key,omitempty"`
	Score          float64          `json:"score"`
	CreatedAt      time.Time        `json:"created_at"`
	ExpiresAt      time.Time        `json:"expires_at"`
	// ConfirmedAt is set when the deployer says the deployment runs; the
	// reservation then counts for the confirm grace time at most.
	ConfirmedAt *time.Time `json:"confirmed_at,omitempty"`
	// StartedAt is set when a build starts (queued → active).
	StartedAt *time.Time `json:"started_at,omitempty"`
}

// Strategy orders the servers that fit.
type Strategy string

// Scoring strategies.
const (
	// StrategySpread prefers the server with the most room left.
	StrategySpread Strategy = "spread"
	// StrategyPack prefers the server with the least room left that fits.
	StrategyPack Strategy = "pack"
)

// Valid reports whether s is a known strategy.
func (s Strategy) Valid() bool { return s == StrategySpread || s == StrategyPack }

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

// ValidateIdentifier checks an optional caller-given identifier: at most
// 256 bytes of printable characters without spaces.
func ValidateIdentifier(s string) error {
	if len(s) > maxIDLength {
		return fmt.Errorf("at most %d characters, got %d", maxIDLength, len(s))
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || c == '\uFFFD' {
			return fmt.Errorf("must not contain spaces or control characters, got %q", s)
		}
	}
	return nil
}

// maxIDLength bounds identifiers given by callers (application ids).
const maxIDLength = 256

package api

import (
	"github.com/berth-dev/berth/placement/build"
	"github.com/berth-dev/berth/placement/quota"
	"github.com/berth-dev/berth/placement/reservation"
	"github.com/berth-dev/berth/placement/schedule"

	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/placement"
)

// CheckRequest is POST /api/v1/placements/check.
type CheckRequest struct {
	Server       string               `json:"server"`
	Requirements *placement.Resources `json:"requirements"`
	// Kind is deployment (default) or build.
	Kind placement.Kind `json:"kind,omitempty"`
	// Organization, when given, is checked as a placement checks it: a
	// server of another organization is refused (wrong_organization).
	Organization string `json:"organization,omitempty"`
}

// CheckResponse is the fit of one server, with a one-line summary.
type CheckResponse struct {
	placement.FitResult
	Summary string `json:"summary"`
}

// PlacementRequest is POST /api/v1/placements.
type PlacementRequest struct {
	Requirements *placement.Resources `json:"requirements"`
	// Candidates restricts the choice to these servers.
	Candidates     []string           `json:"candidates,omitempty"`
	Organization   string             `json:"organization,omitempty"`
	ApplicationID  string             `json:"application_id,omitempty"`
	Strategy       placement.Strategy `json:"strategy,omitempty"`
	Reserve        bool               `json:"reserve,omitempty"`
	IdempotencyKey string             `json:"idempotency_key,omitempty"`
	TTL            *Duration          `json:"ttl,omitempty"`
}

// PlacementResponse is a placement decision; Placed says whether a server
// was chosen (when false, Rejected says why not, server by server).
type PlacementResponse struct {
	Placed bool `json:"placed"`
	*placement.Decision
}

// maxCandidates bounds the candidates list of one request.
const maxCandidates = 10000

func (a *API) checkPlacement(c echo.Context) error {
	var req CheckRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Server == "" {
		return invalidArgument("server", "server is required")
	}
	if req.Requirements == nil {
		return invalidArgument("requirements", "requirements is required, e.g. {\"cpu\": \"0.5\", \"memory\": \"512m\", \"disk\": \"1g\"}")
	}
	if req.Kind == "" {
		req.Kind = placement.KindDeployment
	}
	if !req.Kind.Valid() {
		return invalidArgument("kind", "kind must be %q or %q, got %q", placement.KindDeployment, placement.KindBuild, req.Kind)
	}
	snap, err := a.snapshot(c.Request().Context())
	if err != nil {
		return err
	}
	if _, ok := snap.Servers[req.Server]; !ok {
		return serverNotFound("server", req.Server)
	}
	fit, err := a.opts.Placer.Check(snap, req.Server,
		placement.Request{Kind: req.Kind, Requirements: *req.Requirements, Organization: req.Organization}, a.decider(req.Kind))
	if err != nil {
		return placeError(err)
	}
	return c.JSON(http.StatusOK, CheckResponse{FitResult: fit, Summary: checkSummary(fit, req.Kind)})
}

func checkSummary(f placement.FitResult, kind placement.Kind) string {
	if f.Fits {
		return fmt.Sprintf("%s can take this %s", f.Server, kind)
	}
	s := fmt.Sprintf("%s cannot take this %s:", f.Server, kind)
	for i, r := range f.Reasons {
		if i > 0 {
			s += ","
		}
		s += " " + r.Text()
	}
	return s
}

func (a *API) createPlacement(c echo.Context) error {
	var body PlacementRequest
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	req, err := a.placementRequest(&body)
	if err != nil {
		return err
	}
	snap, err := a.snapshot(c.Request().Context())
	if err != nil {
		return err
	}
	dec, err := a.opts.Placer.Place(snap, req)
	if err != nil {
		a.metrics.decision(string(req.Kind), "error", nil)
		return placeError(err)
	}
	if !dec.Replayed {
		outcome := "placed"
		if dec.Chosen == "" {
			outcome = "no_fit"
		}
		a.metrics.decision(string(dec.Kind), outcome, rejectionReasons(dec))
	}
	return c.JSON(http.StatusOK, PlacementResponse{Placed: dec.Chosen != "", Decision: dec})
}

// placementRequest validates what the JSON decoder cannot and builds the
// domain request. Limits the policy sets (ttl ≤ reservations.max_ttl) are
// 422: the request is well-formed but cannot be honoured.
func (a *API) placementRequest(body *PlacementRequest) (placement.Request, error) {
	if body.Requirements == nil {
		return placement.Request{}, invalidArgument("requirements", "requirements is required, e.g. {\"cpu\": \"0.5\", \"memory\": \"512m\", \"disk\": \"1g\"}")
	}
	if body.Candidates != nil && len(body.Candidates) == 0 {
		return placement.Request{}, invalidArgument("candidates", "candidates must not be empty (leave it out to consider the whole fleet)")
	}
	if len(body.Candidates) > maxCandidates {
		return placement.Request{}, invalidArgument("candidates", "at most %d candidates, got %d", maxCandidates, len(body.Candidates))
	}
	if body.Strategy != "" && !body.Strategy.Valid() {
		return placement.Request{}, invalidArgument("strategy", "strategy must be %q or %q, got %q", placement.StrategySpread, placement.StrategyPack, body.Strategy)
	}
	req := placement.Request{
		Kind:           placement.KindDeployment,
		Requirements:   *body.Requirements,
		Candidates:     body.Candidates,
		Organization:   body.Organization,
		ApplicationID:  body.ApplicationID,
		Strategy:       body.Strategy,
		Reserve:        body.Reserve,
		IdempotencyKey: body.IdempotencyKey,
	}
	if body.TTL != nil && !body.Reserve {
		return placement.Request{}, invalidArgument("ttl", "ttl only applies with \"reserve\": true")
	}
	ttl, err := reservationTTL(body.TTL, a.opts.Policy.Policy())
	if err != nil {
		return placement.Request{}, err
	}
	req.TTL = ttl
	return req, nil
}

// decider is the decision placements of kind are made with.
func (a *API) decider(kind placement.Kind) schedule.Decider {
	if kind == placement.KindBuild {
		return &build.Decider{Expected: a.buildExpected}
	}
	return schedule.DeploymentDecider
}

// placeError maps the Placer's errors to API errors.
func placeError(err error) error {
	var (
		fieldErr *placement.FieldError
		exceeded *quota.ExceededError
		unknown  *quota.UsageUnknownError
	)
	switch {
	case errors.As(err, &exceeded):
		return &Error{Status: http.StatusForbidden, Code: CodeQuotaExceeded, Message: err.Error(), Details: exceeded.Exceeded}
	case errors.As(err, &unknown):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeQuotaUsageUnknown, Field: "organization", Message: err.Error(),
			Details: map[string]any{"organization": unknown.Organization, "unknown_servers": unknown.Servers}}
	case errors.As(err, &fieldErr):
		return invalidArgument(fieldErr.Field, "%s", fieldErr.Error())
	case errors.Is(err, reservation.ErrIdempotencyConflict):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Field: "idempotency_key", Message: err.Error()}
	}
	return err
}

func rejectionReasons(d *placement.Decision) []string {
	var out []string
	for _, r := range d.Rejected {
		for _, reason := range r.Reasons {
			out = append(out, string(reason))
		}
	}
	return out
}

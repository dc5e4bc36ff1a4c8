package api

import (
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/quota"

	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/placement"
)

// OrganizationList is GET /api/v1/organizations: every organization known
// to the fleet, the policy's quotas or open reservations, sorted by name.
type OrganizationList struct {
	TakenAt       time.Time      `json:"taken_at"`
	Organizations []quota.Status `json:"organizations"`
}

// DeploymentCheckRequest is POST /api/v1/organizations/{org}/deployments/check.
type DeploymentCheckRequest struct {
	Requirements *placement.Resources `json:"requirements"`
	// NewApplication charges one application (a first deployment; not a
	// redeploy or a preview of an existing application).
	NewApplication bool `json:"new_application,omitempty"`
}

func (a *API) listOrganizations(c echo.Context) error {
	snap, err := a.snapshot(c.Request().Context())
	if err != nil {
		return err
	}
	p := a.opts.Policy.Policy()
	open := a.opts.Placer.Store().List()
	out := OrganizationList{TakenAt: snap.Taken, Organizations: []quota.Status{}}
	for _, org := range quota.Organizations(p, snap, open) {
		out.Organizations = append(out.Organizations, quota.StatusOf(p, snap, org, open))
	}
	return c.JSON(http.StatusOK, out)
}

// organization reads what every /organizations/{org} handler needs and
// answers 404 for an organization nothing knows.
func (a *API) organization(c echo.Context) (*policy.Policy, *placement.Snapshot, []placement.Reservation, string, error) {
	org := c.Param("org")
	snap, err := a.snapshot(c.Request().Context())
	if err != nil {
		return nil, nil, nil, "", err
	}
	p := a.opts.Policy.Policy()
	open := a.opts.Placer.Store().List()
	if !quota.Knows(p, snap, open, org) {
		return nil, nil, nil, "", notFound("org", "organization %q not found: no server carries it, no quota names it and no reservation holds it", org)
	}
	return p, snap, open, org, nil
}

func (a *API) getOrganization(c echo.Context) error {
	p, snap, open, org, err := a.organization(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, quota.StatusOf(p, snap, org, open))
}

func (a *API) checkDeployment(c echo.Context) error {
	var req DeploymentCheckRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Requirements == nil {
		return invalidArgument("requirements", "requirements is required, e.g. {\"cpu\": \"0.5\", \"memory\": \"512m\"}")
	}
	p, snap, open, org, err := a.organization(c)
	if err != nil {
		return err
	}
	st := quota.StatusOf(p, snap, org, open)
	return c.JSON(http.StatusOK, quota.CheckDeployment(p, &st, *req.Requirements, req.NewApplication))
}

func (a *API) excessServers(c echo.Context) error {
	p, snap, _, org, err := a.organization(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, quota.ExcessOf(p, snap, org))
}

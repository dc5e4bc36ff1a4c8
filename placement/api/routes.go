package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// route is one /api/v1 endpoint. Every route here must be described in
// openapi.json (a test checks both ways); features add their routes to
// apiRoutes and their handlers in a file of their own.
type route struct {
	Method  string
	Path    string // echo syntax, relative to Prefix: /servers/:server
	Summary string
	Handler echo.HandlerFunc
}

func (a *API) apiRoutes() []route {
	return append([]route{
		{http.MethodGet, "/servers", "List servers with their signals, freshness, allocations, reservations and headroom", a.listServers},
		{http.MethodGet, "/servers/:server", "One server", a.getServer},
		{http.MethodPost, "/placements/check", "Can this server take these requirements?", a.checkPlacement},
		{http.MethodPost, "/placements", "Choose a server for a deployment, optionally reserving capacity", a.createPlacement},
		{http.MethodGet, "/reservations", "List open reservations", a.listReservations},
		{http.MethodPost, "/reservations/:id/confirm", "Confirm a reservation: the deployment runs", a.confirmReservation},
		{http.MethodDelete, "/reservations/:id", "Release a reservation", a.deleteReservation},
		{http.MethodGet, "/organizations", "List organizations with quota usage, limits and compliance", a.listOrganizations},
		{http.MethodGet, "/organizations/:org", "One organization's quota usage, limits, compliance and violations", a.getOrganization},
		{http.MethodPost, "/organizations/:org/deployments/check", "May this organization deploy this? Projected usage and Kubernetes-worded refusals", a.checkDeployment},
		{http.MethodGet, "/organizations/:org/excess-servers", "Servers to force-disable when the organization has more than max_servers", a.excessServers},
		{http.MethodGet, "/openapi.json", "This API as an OpenAPI 3 document", a.openAPI},
	}, a.buildRoutes()...)
}

package api

import (
	"net/http"

	"github.com/prometheus/exporter-toolkit/web"
)

// landingPage lists the operational endpoints and every API route.
func (a *API) landingPage() (http.Handler, error) {
	links := []web.LandingLinks{
		{Address: "/metrics", Text: "Metrics"},
		{Address: "/-/healthy", Text: "Health"},
		{Address: "/-/ready", Text: "Readiness", Description: "ready when the Prometheus data source answers"},
		{Address: Prefix + "/openapi.json", Text: "OpenAPI document"},
	}
	for _, r := range a.routes {
		if r.Path == "/openapi.json" {
			continue
		}
		path := Prefix + openAPIPath(r.Path)
		links = append(links, web.LandingLinks{Address: path, Text: r.Method + " " + path, Description: r.Summary})
	}
	return web.NewLandingPage(web.LandingConfig{
		Name:        "Berth Placement",
		Description: "Capacity checks, server choice and reservations for a fleet of PaaS servers, over PromQL",
		Version:     a.opts.Version,
		Links:       links,
		// pprof is not served: no links to it.
		Profiling: "false",
	})
}

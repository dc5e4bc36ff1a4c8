// Package dashboards holds Berth's Grafana dashboards. The JSON files in this
// directory are what users import or provision; they are generated from the
// Go definitions in this package (go generate ./dashboards/) so that
// layout, datasource, units and descriptions stay uniform, and tests check
// every query against the real metric and rule names.
package dashboards

//go:generate go run ./gen

import "embed"

// Files holds the committed dashboard JSON (*.json), one file per dashboard,
// named after its uid.
//
//go:embed *.json
var Files embed.FS

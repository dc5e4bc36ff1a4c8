// Package rules ships Berth's Prometheus recording and alerting rules so that
// berth-placement can load them in embedded mode exactly as a user's
// Prometheus loads the files in this directory.
package rules

import "embed"

// Files holds every *.rules.yml of this directory.
//
//go:embed *.rules.yml
var Files embed.FS

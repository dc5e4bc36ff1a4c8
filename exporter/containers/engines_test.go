package containers

import (
	"testing"

	"github.com/berth-dev/berth/internal/dockertest"
	"github.com/berth-dev/berth/internal/enginetest"
	"github.com/berth-dev/berth/internal/podmantest"
)

// engines are the real engines the live tests and the benchmark run
// against: dockerd, what Coolify servers run, and Podman.
var engines = []struct {
	kind  string
	start func(testing.TB) enginetest.Engine
}{
	{"docker", func(t testing.TB) enginetest.Engine { return dockertest.Start(t) }},
	{"podman", func(t testing.TB) enginetest.Engine { return podmantest.Start(t) }},
}

// forEachEngine runs test once per engine, as a subtest named by the
// engine, each with an engine of its own.
func forEachEngine(t *testing.T, test func(t *testing.T, e enginetest.Engine)) {
	for _, eng := range engines {
		t.Run(eng.kind, func(t *testing.T) { test(t, eng.start(t)) })
	}
}

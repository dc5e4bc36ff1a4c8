// Package enginetest is what the integration tests need of a real container
// engine, whichever it is: the Engine interface that dockertest (dockerd)
// and podmantest (Podman) implement, so one live test runs against both; the
// container operations, done through the Docker Engine API both speak; and
// the busybox image every engine imports offline.
package enginetest

import (
	"net/http"
	"testing"
	"time"
)

// Engine is a running container engine started by a test, with its own
// storage, answering the Docker Engine API on a unix socket.
type Engine interface {
	// Kind names the engine: "docker" or "podman".
	Kind() string
	// Host is the API socket as a Docker host URL (unix:///…).
	Host() string
	// HTTPClient talks to the API socket whatever the URL's host is.
	HTTPClient() *http.Client
	// ServicePIDs are the processes that answer API calls (for measuring
	// the engine's CPU time).
	ServicePIDs() []int
	// StopService stops the API. Podman's containers keep running;
	// dockerd stops its containers as it exits.
	StopService(t testing.TB)

	RunContainer(t testing.TB, s Spec) string
	InspectContainer(t testing.TB, name string) State
	StopContainer(t testing.TB, name string)
	RemoveContainer(t testing.TB, name string)
	WaitContainer(t testing.TB, name string) int
	TagImage(t testing.TB, src, dst string)
	ContainerIDs(t testing.TB) []string
}

// Spec is a container to run, in the terms the tests need on every engine.
// It always runs without a network (the test engines have no bridge).
type Spec struct {
	Name   string
	Image  string // empty: Image
	Cmd    []string
	Labels map[string]string
	// Memory is the memory limit in bytes (0: none); swap is limited to the
	// same amount, so a container over its limit is OOM-killed.
	Memory int64
	// CPUs is the CPU limit in cores (0: none).
	CPUs float64
	// Restart is the restart policy: "", "always", "unless-stopped",
	// "on-failure" or "on-failure:N".
	Restart string
}

// State is what the engine's inspect says about a container.
type State struct {
	ID           string
	Status       string
	Pid          int
	ExitCode     int
	OOMKilled    bool
	RestartCount int
	StartedAt    time.Time
}

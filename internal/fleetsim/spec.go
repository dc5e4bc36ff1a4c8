// Package fleetsim simulates a fleet of servers for tests, demos and
// benchmarks: every simulated server is its own HTTP scrape target on
// loopback whose /metrics looks to Prometheus exactly like a berth-exporter
// (berth_server_info, node_* and container_* series with plausible values
// that vary over time). Values are deterministic for a given seed and spec.
package fleetsim

import (
	"fmt"
)

// Spec describes a simulated fleet.
type Spec struct {
	// Seed makes the varying parts (phases, rates, container ids)
	// reproducible.
	Seed    uint64
	Servers []ServerSpec
}

// ServerSpec is one simulated server. Sizes are in base units (bytes, cores).
type ServerSpec struct {
	Name         string
	Role         string // "app" or "build"
	Organization string // optional

	Cores           int
	MemoryBytes     float64
	MemoryUsedBytes float64 // total − available, on average
	DiskBytes       float64 // size of /
	DiskUsedBytes   float64
	// DiskThreshold is the server's disk usage threshold ratio; 0 means
	// Coolify's default 0.80.
	DiskThreshold float64
	// CPUBusy is the average share of non-idle CPU time, 0..1.
	CPUBusy float64
	// Connections is the number of established TCP connections.
	Connections int

	Containers []ContainerSpec
}

// ContainerSpec is one container on a simulated server; its labels are the
// ones berth-exporter publishes.
type ContainerSpec struct {
	Name          string
	Image         string
	ApplicationID string
	ServiceID     string
	DatabaseID    string
	ResourceType  string
	Project       string
	Environment   string
	PullRequest   string
	Managed       bool
	Role          string // app | database | service | build | backup | infra | other
	State         string // "running" (default when empty) or "exited"

	CPULimitCores         float64 // 0 = no quota
	MemoryLimitBytes      float64 // 0 = unlimited
	CPUUsageCores         float64
	MemoryWorkingSetBytes float64
}

// DefaultDiskThreshold is Coolify's default per-server disk usage threshold.
const DefaultDiskThreshold = 0.80

var (
	serverRoles    = map[string]bool{"app": true, "build": true}
	containerRoles = map[string]bool{"app": true, "database": true, "service": true, "build": true, "backup": true, "infra": true, "other": true}
)

// Validate checks a spec and names the first field that is wrong.
func (s Spec) Validate() error {
	if len(s.Servers) == 0 {
		return fmt.Errorf("servers: at least one server is needed")
	}
	seen := make(map[string]bool, len(s.Servers))
	for i, srv := range s.Servers {
		if err := srv.validate(); err != nil {
			return fmt.Errorf("servers[%d].%w", i, err)
		}
		if seen[srv.Name] {
			return fmt.Errorf("servers[%d].name: duplicate server name %q", i, srv.Name)
		}
		seen[srv.Name] = true
	}
	return nil
}

func (s ServerSpec) validate() error {
	switch {
	case s.Name == "":
		return fmt.Errorf("name: must not be empty")
	case !serverRoles[s.Role]:
		return fmt.Errorf("role: %q is not app or build", s.Role)
	case s.Cores <= 0:
		return fmt.Errorf("cores: must be > 0, got %d", s.Cores)
	case s.MemoryBytes <= 0:
		return fmt.Errorf("memory_bytes: must be > 0")
	case s.MemoryUsedBytes < 0 || s.MemoryUsedBytes > s.MemoryBytes:
		return fmt.Errorf("memory_used_bytes: must be within 0..memory_bytes")
	case s.DiskBytes <= 0:
		return fmt.Errorf("disk_bytes: must be > 0")
	case s.DiskUsedBytes < 0 || s.DiskUsedBytes > s.DiskBytes:
		return fmt.Errorf("disk_used_bytes: must be within 0..disk_bytes")
	case s.DiskThreshold < 0 || s.DiskThreshold > 1:
		return fmt.Errorf("disk_threshold: must be within 0..1")
	case s.CPUBusy < 0 || s.CPUBusy > 1:
		return fmt.Errorf("cpu_busy: must be within 0..1")
	case s.Connections < 0:
		return fmt.Errorf("connections: must be >= 0")
	}
	names := make(map[string]bool, len(s.Containers))
	for i, c := range s.Containers {
		if err := c.validate(); err != nil {
			return fmt.Errorf("containers[%d].%w", i, err)
		}
		if names[c.Name] {
			return fmt.Errorf("containers[%d].name: duplicate container name %q", i, c.Name)
		}
		names[c.Name] = true
	}
	return nil
}

func (c ContainerSpec) validate() error {
	switch {
	case c.Name == "":
		return fmt.Errorf("name: must not be empty")
	case !containerRoles[c.Role]:
		return fmt.Errorf("role: %q is not a container role", c.Role)
	case c.State != "" && c.State != "running" && c.State != "exited":
		return fmt.Errorf("state: %q is not running or exited", c.State)
	case c.CPULimitCores < 0 || c.MemoryLimitBytes < 0 || c.CPUUsageCores < 0 || c.MemoryWorkingSetBytes < 0:
		return fmt.Errorf("resources: must not be negative")
	}
	return nil
}

func (c ContainerSpec) running() bool { return c.State == "" || c.State == "running" }

func (s ServerSpec) diskThreshold() float64 {
	if s.DiskThreshold == 0 {
		return DefaultDiskThreshold
	}
	return s.DiskThreshold
}

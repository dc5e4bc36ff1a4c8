package placement

import (
	"slices"
	"testing"
	"time"
)

const (
	gib = 1 << 30
	mib = 1 << 20
)

var testNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// server is a fresh, idle app server: 4 cores, 8 GiB, 100 GiB disk with a
// 0.80 threshold. With the default policy its usable capacity is 3.6 cores,
// 7.2 GiB memory and 80 GiB disk.
func server(name string, mods ...func(*ServerState)) *ServerState {
	s := &ServerState{
		Name:     name,
		Role:     RoleApp,
		LastSeen: testNow.Add(-5 * time.Second),
		Age:      5 * time.Second,
		CPU:      CPUState{Cores: 4},
		Memory:   MemoryState{TotalBytes: 8 * gib, AvailableBytes: 8 * gib},
		Disk:     DiskState{SizeBytes: 100 * gib, AvailableBytes: 100 * gib, ThresholdRatio: 0.80},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

func TestFitServer(t *testing.T) {
	p := DefaultPolicy()
	small := Resources{CPU: 1, Memory: 1 * gib, Disk: 1 * gib}
	for _, tc := range []struct {
		name     string
		s        *ServerState
		kind     Kind
		req      Resources
		reserved Resources
		want     []Reason
		// checks of one dimension's explanation
		dim       Dimension
		available float64
		used      float64
	}{
		{name: "idle server fits", s: server("a"), req: small, dim: DimensionCPU, available: 3.6},
		{name: "exactly the room left fits", s: server("a"), req: Resources{CPU: 3.6}, dim: DimensionCPU, available: 3.6},
		{
			name: "observed peak leaves too little cpu",
			s:    server("a", func(s *ServerState) { s.CPU.PeakUtilisation = 0.5; s.CPU.Utilisation = 0.1 }),
			req:  Resources{CPU: 2}, want: []Reason{ReasonInsufficientCPU},
			dim: DimensionCPU, available: 1.6, used: 2,
		},
		{
			name: "allocated limits above observed use count",
			s:    server("a", func(s *ServerState) { s.CPU.PeakUtilisation = 0.1; s.Containers.LimitedCPUCores = 3 }),
			req:  small, want: []Reason{ReasonInsufficientCPU},
			dim: DimensionCPU, available: 0.6, used: 3,
		},
		{
			name: "unlimited containers charged the default cpu request",
			s:    server("a", func(s *ServerState) { s.Containers.UnlimitedCPU = 6 }),
			req:  small, want: []Reason{ReasonInsufficientCPU},
			dim: DimensionCPU, available: 0.6, used: 3,
		},
		{
			name: "unlimited containers leave room for a small request",
			s:    server("a", func(s *ServerState) { s.Containers.UnlimitedCPU = 6 }),
			req:  Resources{CPU: 0.5}, dim: DimensionCPU, available: 0.6, used: 3,
		},
		{
			name: "unlimited containers charged the default memory request",
			s:    server("a", func(s *ServerState) { s.Containers.UnlimitedMemory = 10 }),
			req:  Resources{Memory: 3 * gib}, want: []Reason{ReasonInsufficientMemory},
			dim: DimensionMemory, available: 7.2*gib - 5*gib, used: 5 * gib,
		},
		{
			name: "memory peak leaves too little",
			s:    server("a", func(s *ServerState) { s.Memory.PeakUsedBytes = 6 * gib; s.Memory.AvailableBytes = 4 * gib }),
			req:  Resources{Memory: 2 * gib}, want: []Reason{ReasonInsufficientMemory},
			dim: DimensionMemory, available: 1.2 * gib, used: 6 * gib,
		},
		{
			name: "memory limits and unlimited combine",
			s: server("a", func(s *ServerState) {
				s.Containers.LimitedMemoryBytes = 4 * gib
				s.Containers.UnlimitedMemory = 4
			}),
			req: Resources{Memory: 1 * gib}, dim: DimensionMemory, available: 1.2 * gib, used: 6 * gib,
		},
		{
			name: "reservations are counted", s: server("a"),
			req: small, reserved: Resources{CPU: 3}, want: []Reason{ReasonInsufficientCPU},
			dim: DimensionCPU, available: 0.6,
		},
		{
			name: "reserved memory counted", s: server("a"),
			req: Resources{Memory: 2 * gib}, reserved: Resources{Memory: 6 * gib}, want: []Reason{ReasonInsufficientMemory},
			dim: DimensionMemory, available: 1.2 * gib,
		},
		{
			name: "disk request would cross the server's threshold",
			s:    server("a", func(s *ServerState) { s.Disk.AvailableBytes = 25 * gib }),
			req:  Resources{Disk: 10 * gib}, want: []Reason{ReasonDiskThreshold},
			dim: DimensionDisk, available: 5 * gib, used: 75 * gib,
		},
		{
			name: "server already above its threshold takes nothing",
			s:    server("a", func(s *ServerState) { s.Disk.AvailableBytes = 15 * gib }),
			req:  Resources{CPU: 0.1}, want: []Reason{ReasonDiskThreshold},
			dim: DimensionDisk, available: 0, used: 85 * gib,
		},
		{
			name: "disk physically too small",
			s:    server("a", func(s *ServerState) { s.Disk.AvailableBytes = 5 * gib }),
			req:  Resources{Disk: 10 * gib}, want: []Reason{ReasonInsufficientDisk},
			dim: DimensionDisk, available: 0,
		},
		{
			name: "reserved disk counts physically too",
			s:    server("a", func(s *ServerState) { s.Disk.ThresholdRatio = 1; s.Disk.AvailableBytes = 20 * gib }),
			req:  Resources{Disk: 10 * gib}, reserved: Resources{Disk: 15 * gib}, want: []Reason{ReasonInsufficientDisk},
			dim: DimensionDisk,
		},
		{
			name: "server's own threshold lower than the policy's",
			s:    server("a", func(s *ServerState) { s.Disk.ThresholdRatio = 0.5; s.Disk.AvailableBytes = 52 * gib }),
			req:  Resources{Disk: 5 * gib}, want: []Reason{ReasonDiskThreshold},
			dim: DimensionDisk, available: 2 * gib,
		},
		{
			name: "policy's disk ceiling lower than the server's threshold",
			s:    server("a", func(s *ServerState) { s.Disk.ThresholdRatio = 0.99; s.Disk.AvailableBytes = 10 * gib }),
			req:  Resources{Disk: 6 * gib}, want: []Reason{ReasonDiskThreshold},
			dim: DimensionDisk, available: 5 * gib,
		},
		{
			name: "no published threshold uses the policy default",
			s:    server("a", func(s *ServerState) { s.Disk.ThresholdRatio = 0; s.Disk.AvailableBytes = 30 * gib }),
			req:  Resources{Disk: 20 * gib}, want: []Reason{ReasonDiskThreshold},
			dim: DimensionDisk, available: 10 * gib,
		},
		{
			name: "every failing dimension is named",
			s: server("a", func(s *ServerState) {
				s.CPU.PeakUtilisation = 1
				s.Memory.PeakUsedBytes = 8 * gib
				s.Disk.AvailableBytes = gib / 2
			}),
			req: small, want: []Reason{ReasonInsufficientCPU, ReasonInsufficientMemory, ReasonInsufficientDisk},
		},
		{name: "unknown server", s: nil, req: small, want: []Reason{ReasonServerNotFound}},
		{name: "build server never takes a deployment", s: server("b", func(s *ServerState) { s.Role = RoleBuild }), req: small, want: []Reason{ReasonWrongRole}},
		{name: "app server never takes a build", s: server("a"), kind: KindBuild, req: small, want: []Reason{ReasonWrongRole}},
		{name: "build server takes a build", s: server("b", func(s *ServerState) { s.Role = RoleBuild }), kind: KindBuild, req: small},
		{name: "other roles take deployments", s: server("a", func(s *ServerState) { s.Role = "" }), req: small},
		{
			name: "stale server", s: server("a", func(s *ServerState) { s.Age = 2 * time.Minute }),
			req: small, want: []Reason{ReasonMetricsStale},
		},
		{
			name: "exactly fresh", s: server("a", func(s *ServerState) { s.Age = time.Minute }), req: small,
		},
		{
			// Its last scrape failed seconds ago: the age still looks fresh,
			// the signals are gone.
			name: "just went silent is stale, not missing",
			s: server("a", func(s *ServerState) {
				s.Age, s.Silent = 5*time.Second, true
				s.Missing = []string{"server:node_cpus:count", "server:node_memory_total:bytes"}
			}),
			req: small, want: []Reason{ReasonMetricsStale},
		},
		{
			name: "too old is missing", s: server("a", func(s *ServerState) { s.Age = 16 * time.Minute }),
			req: small, want: []Reason{ReasonMetricsMissing},
		},
		{
			name: "never seen is missing", s: server("a", func(s *ServerState) { s.LastSeen = time.Time{}; s.Age = 0 }),
			req: small, want: []Reason{ReasonMetricsMissing},
		},
		{
			name: "a needed signal without value is missing",
			s:    server("a", func(s *ServerState) { s.Missing = []string{"server:node_memory_used_bytes:max15m"} }),
			req:  small, want: []Reason{ReasonMetricsMissing},
		},
		{
			name: "zero capacity is missing data",
			s:    server("a", func(s *ServerState) { s.Memory.TotalBytes = 0 }),
			req:  small, want: []Reason{ReasonMetricsMissing},
		},
		{
			name: "container sums absent (no containers) is fine",
			s:    server("a", func(s *ServerState) { s.Missing = []string{"server:container_spec_cpu_cores:sum"} }),
			req:  small,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind := tc.kind
			if kind == "" {
				kind = KindDeployment
			}
			got := p.FitServer("a", tc.s, kind, tc.req, tc.reserved)
			if !slices.Equal(got.Reasons, tc.want) {
				t.Fatalf("reasons = %v, want %v (dimensions %+v)", got.Reasons, tc.want, got.Dimensions)
			}
			if got.Fits != (len(tc.want) == 0) {
				t.Errorf("fits = %v with reasons %v", got.Fits, got.Reasons)
			}
			if tc.dim == "" {
				return
			}
			d := got.Dimension(tc.dim)
			if d == nil {
				t.Fatalf("no %s dimension in %+v", tc.dim, got)
			}
			if !near(d.Available, tc.available) {
				t.Errorf("%s available = %v, want %v", tc.dim, d.Available, tc.available)
			}
			if tc.used != 0 && !near(d.Used, tc.used) {
				t.Errorf("%s used = %v, want %v", tc.dim, d.Used, tc.used)
			}
			if want := requested(tc.req, tc.dim); d.Requested != want {
				t.Errorf("%s requested = %v, want %v", tc.dim, d.Requested, want)
			}
			if d.Capacity <= 0 {
				t.Errorf("%s capacity = %v", tc.dim, d.Capacity)
			}
		})
	}
}

func TestFitResultsOnlyForFreshKnownServers(t *testing.T) {
	p := DefaultPolicy()
	stale := server("a", func(s *ServerState) { s.Age = time.Hour })
	if got := p.FitServer("a", stale, KindDeployment, Resources{CPU: 1}, Resources{}); len(got.Dimensions) != 0 || got.Freshness != Missing {
		t.Errorf("a missing server was measured against stale data: %+v", got)
	}
}

func requested(r Resources, d Dimension) float64 {
	switch d {
	case DimensionCPU:
		return float64(r.CPU)
	case DimensionMemory:
		return float64(r.Memory)
	}
	return float64(r.Disk)
}

func near(a, b float64) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	return d <= 1e-6*max(1, b)
}

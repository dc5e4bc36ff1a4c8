package fit

import (
	"math"

	"github.com/berth-dev/berth/internal/placementtest"
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/policy"

	"slices"
	"testing"
	"time"
)

func TestFitServer(t *testing.T) {
	p := policy.Default()
	small := placement.Resources{CPU: 1, Memory: 1 * placementtest.GiB, Disk: 1 * placementtest.GiB}
	for _, tc := range []struct {
		name     string
		s        *placement.ServerState
		kind     placement.Kind
		req      placement.Resources
		reserved placement.Resources
		want     []placement.Reason
		// checks of one dimension's explanation
		dim       placement.Dimension
		available float64
		used      float64
	}{
		{name: "idle server fits", s: placementtest.Server("a"), req: small, dim: placement.DimensionCPU, available: 3.6},
		{name: "exactly the room left fits", s: placementtest.Server("a"), req: placement.Resources{CPU: 3.6}, dim: placement.DimensionCPU, available: 3.6},
		{
			name: "observed peak leaves too little cpu",
			s:    placementtest.Server("a", func(s *placement.ServerState) { s.CPU.PeakUtilisation = 0.5; s.CPU.Utilisation = 0.1 }),
			req:  placement.Resources{CPU: 2}, want: []placement.Reason{placement.ReasonInsufficientCPU},
			dim: placement.DimensionCPU, available: 1.6, used: 2,
		},
		{
			name: "allocated limits above observed use count",
			s:    placementtest.Server("a", func(s *placement.ServerState) { s.CPU.PeakUtilisation = 0.1; s.Containers.LimitedCPUCores = 3 }),
			req:  small, want: []placement.Reason{placement.ReasonInsufficientCPU},
			dim: placement.DimensionCPU, available: 0.6, used: 3,
		},
		{
			name: "unlimited containers charged the default cpu request",
			s:    placementtest.Server("a", func(s *placement.ServerState) { s.Containers.UnlimitedCPU = 6 }),
			req:  small, want: []placement.Reason{placement.ReasonInsufficientCPU},
			dim: placement.DimensionCPU, available: 0.6, used: 3,
		},
		{
			name: "unlimited containers leave room for a small request",
			s:    placementtest.Server("a", func(s *placement.ServerState) { s.Containers.UnlimitedCPU = 6 }),
			req:  placement.Resources{CPU: 0.5}, dim: placement.DimensionCPU, available: 0.6, used: 3,
		},
		{
			name: "unlimited containers charged the default memory request",
			s:    placementtest.Server("a", func(s *placement.ServerState) { s.Containers.UnlimitedMemory = 10 }),
			req:  placement.Resources{Memory: 3 * placementtest.GiB}, want: []placement.Reason{placement.ReasonInsufficientMemory},
			dim: placement.DimensionMemory, available: 7.2*placementtest.GiB - 5*placementtest.GiB, used: 5 * placementtest.GiB,
		},
		{
			name: "memory peak leaves too little",
			s: placementtest.Server("a", func(s *placement.ServerState) {
				s.Memory.PeakUsedBytes = 6 * placementtest.GiB
				s.Memory.AvailableBytes = 4 * placementtest.GiB
			}),
			req: placement.Resources{Memory: 2 * placementtest.GiB}, want: []placement.Reason{placement.ReasonInsufficientMemory},
			dim: placement.DimensionMemory, available: 1.2 * placementtest.GiB, used: 6 * placementtest.GiB,
		},
		{
			name: "memory limits and unlimited combine",
			s: placementtest.Server("a", func(s *placement.ServerState) {
				s.Containers.LimitedMemoryBytes = 4 * placementtest.GiB
				s.Containers.UnlimitedMemory = 4
			}),
			req: placement.Resources{Memory: 1 * placementtest.GiB}, dim: placement.DimensionMemory, available: 1.2 * placementtest.GiB, used: 6 * placementtest.GiB,
		},
		{
			name: "reservations are counted", s: placementtest.Server("a"),
			req: small, reserved: placement.Resources{CPU: 3}, want: []placement.Reason{placement.ReasonInsufficientCPU},
			dim: placement.DimensionCPU, available: 0.6,
		},
		{
			name: "reserved memory counted", s: placementtest.Server("a"),
			req: placement.Resources{Memory: 2 * placementtest.GiB}, reserved: placement.Resources{Memory: 6 * placementtest.GiB}, want: []placement.Reason{placement.ReasonInsufficientMemory},
			dim: placement.DimensionMemory, available: 1.2 * placementtest.GiB,
		},
		{
			name: "disk request would cross the server's threshold",
			s:    placementtest.Server("a", func(s *placement.ServerState) { s.Disk.AvailableBytes = 25 * placementtest.GiB }),
			req:  placement.Resources{Disk: 10 * placementtest.GiB}, want: []placement.Reason{placement.ReasonDiskThreshold},
			dim: placement.DimensionDisk, available: 5 * placementtest.GiB, used: 75 * placementtest.GiB,
		},
		{
			name: "server already above its threshold takes nothing",
			s:    placementtest.Server("a", func(s *placement.ServerState) { s.Disk.AvailableBytes = 15 * placementtest.GiB }),
			req:  placement.Resources{CPU: 0.1}, want: []placement.Reason{placement.ReasonDiskThreshold},
			dim: placement.DimensionDisk, available: 0, used: 85 * placementtest.GiB,
		},
		{
			name: "disk physically too small",
			s:    placementtest.Server("a", func(s *placement.ServerState) { s.Disk.AvailableBytes = 5 * placementtest.GiB }),
			req:  placement.Resources{Disk: 10 * placementtest.GiB}, want: []placement.Reason{placement.ReasonInsufficientDisk},
			dim: placement.DimensionDisk, available: 0,
		},
		{
			name: "reserved disk counts physically too",
			s: placementtest.Server("a", func(s *placement.ServerState) {
				s.Disk.ThresholdRatio = 1
				s.Disk.AvailableBytes = 20 * placementtest.GiB
			}),
			req: placement.Resources{Disk: 10 * placementtest.GiB}, reserved: placement.Resources{Disk: 15 * placementtest.GiB}, want: []placement.Reason{placement.ReasonInsufficientDisk},
			dim: placement.DimensionDisk,
		},
		{
			name: "server's own threshold lower than the policy's",
			s: placementtest.Server("a", func(s *placement.ServerState) {
				s.Disk.ThresholdRatio = 0.5
				s.Disk.AvailableBytes = 52 * placementtest.GiB
			}),
			req: placement.Resources{Disk: 5 * placementtest.GiB}, want: []placement.Reason{placement.ReasonDiskThreshold},
			dim: placement.DimensionDisk, available: 2 * placementtest.GiB,
		},
		{
			name: "policy's disk ceiling lower than the server's threshold",
			s: placementtest.Server("a", func(s *placement.ServerState) {
				s.Disk.ThresholdRatio = 0.99
				s.Disk.AvailableBytes = 10 * placementtest.GiB
			}),
			req: placement.Resources{Disk: 6 * placementtest.GiB}, want: []placement.Reason{placement.ReasonDiskThreshold},
			dim: placement.DimensionDisk, available: 5 * placementtest.GiB,
		},
		{
			name: "no published threshold uses the policy default",
			s: placementtest.Server("a", func(s *placement.ServerState) {
				s.Disk.ThresholdRatio = 0
				s.Disk.AvailableBytes = 30 * placementtest.GiB
			}),
			req: placement.Resources{Disk: 20 * placementtest.GiB}, want: []placement.Reason{placement.ReasonDiskThreshold},
			dim: placement.DimensionDisk, available: 10 * placementtest.GiB,
		},
		{
			name: "every failing dimension is named",
			s: placementtest.Server("a", func(s *placement.ServerState) {
				s.CPU.PeakUtilisation = 1
				s.Memory.PeakUsedBytes = 8 * placementtest.GiB
				s.Disk.AvailableBytes = placementtest.GiB / 2
			}),
			req: small, want: []placement.Reason{placement.ReasonInsufficientCPU, placement.ReasonInsufficientMemory, placement.ReasonInsufficientDisk},
		},
		{name: "unknown server", s: nil, req: small, want: []placement.Reason{placement.ReasonServerNotFound}},
		{name: "build server never takes a deployment", s: placementtest.Server("b", func(s *placement.ServerState) { s.Role = placement.RoleBuild }), req: small, want: []placement.Reason{placement.ReasonWrongRole}},
		{name: "app server never takes a build", s: placementtest.Server("a"), kind: placement.KindBuild, req: small, want: []placement.Reason{placement.ReasonWrongRole}},
		{name: "build server takes a build", s: placementtest.Server("b", func(s *placement.ServerState) { s.Role = placement.RoleBuild }), kind: placement.KindBuild, req: small},
		{name: "other roles take deployments", s: placementtest.Server("a", func(s *placement.ServerState) { s.Role = "" }), req: small},
		{
			name: "stale server", s: placementtest.Server("a", func(s *placement.ServerState) { s.Age = 2 * time.Minute }),
			req: small, want: []placement.Reason{placement.ReasonMetricsStale},
		},
		{
			name: "exactly fresh", s: placementtest.Server("a", func(s *placement.ServerState) { s.Age = time.Minute }), req: small,
		},
		{
			// Its last scrape failed seconds ago: the age still looks fresh,
			// the signals are gone.
			name: "just went silent is stale, not missing",
			s: placementtest.Server("a", func(s *placement.ServerState) {
				s.Age, s.Silent = 5*time.Second, true
				s.Missing = []string{"server:node_cpus:count", "server:node_memory_total:bytes"}
			}),
			req: small, want: []placement.Reason{placement.ReasonMetricsStale},
		},
		{
			name: "too old is missing", s: placementtest.Server("a", func(s *placement.ServerState) { s.Age = 16 * time.Minute }),
			req: small, want: []placement.Reason{placement.ReasonMetricsMissing},
		},
		{
			name: "never seen is missing", s: placementtest.Server("a", func(s *placement.ServerState) { s.LastSeen = time.Time{}; s.Age = 0 }),
			req: small, want: []placement.Reason{placement.ReasonMetricsMissing},
		},
		{
			name: "a needed signal without value is missing",
			s: placementtest.Server("a", func(s *placement.ServerState) {
				s.Missing, s.CapacityMissing = []string{"server:node_memory_used_bytes:max15m"}, true
			}),
			req: small, want: []placement.Reason{placement.ReasonMetricsMissing},
		},
		{
			name: "zero capacity is missing data",
			s:    placementtest.Server("a", func(s *placement.ServerState) { s.Memory.TotalBytes = 0 }),
			req:  small, want: []placement.Reason{placement.ReasonMetricsMissing},
		},
		{
			name: "container sums absent (no containers) is fine",
			s:    placementtest.Server("a", func(s *placement.ServerState) { s.Missing = []string{"server:container_spec_cpu_cores:sum"} }),
			req:  small,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind := tc.kind
			if kind == "" {
				kind = placement.KindDeployment
			}
			got := Server(p, "a", tc.s, kind, tc.req, tc.reserved)
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
	p := policy.Default()
	stale := placementtest.Server("a", func(s *placement.ServerState) { s.Age = time.Hour })
	if got := Server(p, "a", stale, placement.KindDeployment, placement.Resources{CPU: 1}, placement.Resources{}); len(got.Dimensions) != 0 || got.Freshness != placement.Missing {
		t.Errorf("a missing server was measured against stale data: %+v", got)
	}
}

func requested(r placement.Resources, d placement.Dimension) float64 {
	switch d {
	case placement.DimensionCPU:
		return float64(r.CPU)
	case placement.DimensionMemory:
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

func TestHeadroom(t *testing.T) {
	p := policy.Default()
	// 4 cores × 0.9 − 1 reserved = 2.6; 8 GiB × 0.9 − 1 GiB; disk 80 % of 100 GiB.
	h := Headroom(p, placementtest.Server("a"), placement.Resources{CPU: 1, Memory: placementtest.GiB})
	if h == nil || h.CPU != 2.6 || h.Memory != placement.Bytes(math.Floor(0.9*8*placementtest.GiB))-placementtest.GiB || h.Disk != 80*placementtest.GiB {
		t.Errorf("headroom of an idle server: %+v", h)
	}
	stale := placementtest.Server("b", func(s *placement.ServerState) { s.Silent = true })
	if h := Headroom(p, stale, placement.Resources{}); h != nil {
		t.Errorf("headroom of a silent server: %+v, want none", h)
	}
}

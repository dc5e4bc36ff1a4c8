package build

import (
	"github.com/berth-dev/berth/internal/placementtest"
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/policy"

	"testing"
	"time"
)

// buildServer is a fresh build server (8 cores, 16 GiB, 200 GiB disk) at
// cpu% and mem% use, running metricBuilds build containers.
func buildServer(name string, cpuPct, memPct float64, metricBuilds int) *placement.ServerState {
	return placementtest.Server(name, func(s *placement.ServerState) {
		s.Role = placement.RoleBuild
		s.CPU = placement.CPUState{Cores: 8, Utilisation: cpuPct / 100, PeakUtilisation: cpuPct / 100}
		s.Memory = placement.MemoryState{TotalBytes: 16 * placementtest.GiB, AvailableBytes: 16 * placementtest.GiB * (1 - memPct/100), PeakUsedBytes: 16 * placementtest.GiB * memPct / 100}
		s.Disk = placement.DiskState{SizeBytes: 200 * placementtest.GiB, AvailableBytes: 150 * placementtest.GiB, ThresholdRatio: 0.80}
		s.Containers.BuildsActive = metricBuilds
	})
}

func TestBuildScore(t *testing.T) {
	def := policy.Default().Builds.Weights
	custom := policy.BuildWeights{CPU: 1, Memory: 0, Queue: 100, Active: 1}
	for _, tc := range []struct {
		name           string
		w              policy.BuildWeights
		cpu, mem       float64
		queued, active int
		want           float64
	}{
		{"idle", def, 0, 0, 0, 0, 0},
		// The seed's formula: cpu% × 0.4 + memory% × 0.3 + queue × 10 + active × 15.
		{"cpu only", def, 50, 0, 0, 0, 20},
		{"memory only", def, 0, 50, 0, 0, 15},
		{"one queued", def, 0, 0, 1, 0, 10},
		{"one active", def, 0, 0, 0, 1, 15},
		{"everything", def, 80, 60, 2, 1, 32 + 18 + 20 + 15},
		{"rounded to two decimals", def, 33.333, 0, 0, 0, 13.33},
		{"custom weights", custom, 40, 90, 1, 3, 40 + 0 + 100 + 3},
	} {
		if got := Score(tc.w, tc.cpu, tc.mem, tc.queued, tc.active); got != tc.want {
			t.Errorf("%s: score %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestBuildLoadCountsBuilds(t *testing.T) {
	p := policy.Default()
	s := buildServer("b", 25, 50, 0) // LastSeen = placementtest.Now − 5s
	before := s.LastSeen.Add(-time.Minute)
	after := s.LastSeen.Add(time.Second)
	res := func(server string, kind placement.Kind, state placement.ReservationState, started *time.Time) placement.Reservation {
		return placement.Reservation{Server: server, Kind: kind, State: state, StartedAt: started, Resources: placement.Resources{Memory: placementtest.GiB}}
	}
	for _, tc := range []struct {
		name                                string
		metrics                             int
		open                                []placement.Reservation
		wantActive, wantQueued, wantStarted int
	}{
		{"nothing", 0, nil, 0, 0, 0},
		{"metrics only (builds Berth did not place)", 2, nil, 2, 0, 0},
		{"queued reservations are queue, not active", 0, []placement.Reservation{res("b", placement.KindBuild, placement.StateQueued, nil), res("b", placement.KindBuild, placement.StateQueued, nil)}, 0, 2, 0},
		{"started after the newest sample: not in metrics yet, added", 1, []placement.Reservation{res("b", placement.KindBuild, placement.StateActive, &after)}, 2, 0, 1},
		{"started before the newest sample: already in metrics", 1, []placement.Reservation{res("b", placement.KindBuild, placement.StateActive, &before)}, 1, 0, 1},
		{"metrics missing a started build never make room", 0, []placement.Reservation{res("b", placement.KindBuild, placement.StateActive, &before), res("b", placement.KindBuild, placement.StateActive, &before)}, 2, 0, 2},
		{"other servers and deployments do not count", 0, []placement.Reservation{res("other", placement.KindBuild, placement.StateQueued, nil), res("b", placement.KindDeployment, placement.StateActive, nil)}, 0, 0, 0},
	} {
		s.Containers.BuildsActive = tc.metrics
		l := LoadOf(p, s, tc.open)
		if l.ActiveBuilds != tc.wantActive || l.QueuedBuilds != tc.wantQueued || l.StartedReservations != tc.wantStarted {
			t.Errorf("%s: active %d queued %d started %d, want %d %d %d", tc.name, l.ActiveBuilds, l.QueuedBuilds, l.StartedReservations, tc.wantActive, tc.wantQueued, tc.wantStarted)
		}
		want := Score(p.Builds.Weights, 25, 50, tc.wantQueued, tc.wantActive)
		if l.Score != want || l.CPUPercent != 25 || l.MemoryPercent != 50 {
			t.Errorf("%s: score %v (cpu %v mem %v), want %v", tc.name, l.Score, l.CPUPercent, l.MemoryPercent, want)
		}
		if l.FreeSlots != max(2-tc.wantActive-tc.wantQueued, 0) || l.ConcurrentBuilds != 2 {
			t.Errorf("%s: free slots %d of %d", tc.name, l.FreeSlots, l.ConcurrentBuilds)
		}
	}
}

func TestBuildLoadPerServerCap(t *testing.T) {
	p, err := policy.Parse([]byte("builds:\n  concurrent_builds: 3\n  servers:\n    big: {concurrent_builds: 6}\n    off: {concurrent_builds: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	snap := placementtest.Fleet(buildServer("big", 0, 0, 0), buildServer("off", 0, 0, 0), buildServer("plain", 0, 0, 1), placementtest.Server("app"))
	loads := Loads(p, snap, nil)
	if len(loads) != 3 {
		t.Fatalf("loads of %d servers, want the 3 build servers: %+v", len(loads), loads)
	}
	want := map[string][2]int{"big": {6, 6}, "off": {0, 0}, "plain": {3, 2}}
	for _, l := range loads {
		if w := want[l.Server]; l.ConcurrentBuilds != w[0] || l.FreeSlots != w[1] {
			t.Errorf("%s: cap %d free %d, want %v", l.Server, l.ConcurrentBuilds, l.FreeSlots, w)
		}
	}
	if !loads[1].Full() || loads[0].Full() {
		t.Errorf("a cap of 0 is always full, a free server is not: %+v", loads)
	}
}

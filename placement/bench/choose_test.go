package bench

import (
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/quota"
	"github.com/berth-dev/berth/placement/reservation"
	"github.com/berth-dev/berth/placement/schedule"

	"fmt"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/fleetsim"
	"github.com/berth-dev/berth/placement"
)

// syntheticSnapshot is the snapshot the recording rules would give for a
// generated fleet, built directly from its spec: the decision code's input
// without Prometheus, so its CPU cost can be profiled on its own.
func syntheticSnapshot(b *testing.B, n int) *placement.Snapshot {
	b.Helper()
	spec, err := fleetsim.Generate(fleetsim.GenerateOptions{Servers: n, BuildServers: n / 10, Organizations: 5, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	snap := &placement.Snapshot{Taken: now, Servers: map[string]*placement.ServerState{}}
	for _, s := range spec.Servers {
		st := &placement.ServerState{
			Name: s.Name, Role: s.Role, Organization: s.Organization,
			LastSeen: now.Add(-5 * time.Second), Age: 5 * time.Second,
			CPU:    placement.CPUState{Cores: float64(s.Cores), Utilisation: s.CPUBusy, PeakUtilisation: s.CPUBusy * 1.15},
			Memory: placement.MemoryState{TotalBytes: s.MemoryBytes, AvailableBytes: s.MemoryBytes - s.MemoryUsedBytes, PeakUsedBytes: s.MemoryUsedBytes * 1.15},
			Disk:   placement.DiskState{SizeBytes: s.DiskBytes, AvailableBytes: s.DiskBytes - s.DiskUsedBytes, ThresholdRatio: fleetsim.DefaultDiskThreshold},
		}
		for _, c := range s.Containers {
			st.Containers.Running++
			st.Containers.LimitedCPUCores += c.CPULimitCores
			st.Containers.LimitedMemoryBytes += c.MemoryLimitBytes
			if c.CPULimitCores == 0 {
				st.Containers.UnlimitedCPU++
			}
			if c.MemoryLimitBytes == 0 {
				st.Containers.UnlimitedMemory++
			}
		}
		snap.Servers[s.Name] = st
	}
	return snap
}

// BenchmarkDecisionInMemory is the decision code alone over a synthetic
// snapshot: Policy.Choose (and the reference implementation it replaced),
// Placer.Place without and with a reservation (the latter includes writing
// and fsyncing the reservation file). It needs no Prometheus, so
// `-cpuprofile` shows the decision code only.
func BenchmarkDecisionInMemory(b *testing.B) {
	for _, n := range []int{100, 1000} {
		snap := syntheticSnapshot(b, n)
		p := policy.Default()
		req := placement.Request{Kind: placement.KindDeployment, Requirements: request, TTL: reservationTTL}
		b.Run(fmt.Sprintf("servers=%d/choose", n), func(b *testing.B) {
			b.ReportAllocs()
			var seed uint64
			for b.Loop() {
				seed++
				if d := schedule.Choose(p, snap, &req, nil, seed); d.Chosen == "" {
					b.Fatal(d.Summary)
				}
			}
		})
		// The straightforward implementation Choose replaced, for
		// comparison (see reference_test.go).
		b.Run(fmt.Sprintf("servers=%d/choose-reference", n), func(b *testing.B) {
			b.ReportAllocs()
			var seed uint64
			for b.Loop() {
				seed++
				if d := referenceChoose(p, snap, &req, nil, seed); d.Chosen == "" {
					b.Fatal(d.Summary)
				}
			}
		})
		for _, reserve := range []bool{false, true} {
			b.Run(fmt.Sprintf("servers=%d/place-reserve=%t", n, reserve), func(b *testing.B) {
				store, err := reservation.Open(b.TempDir(), nil)
				if err != nil {
					b.Fatal(err)
				}
				defer store.Close()
				pl := schedule.NewPlacer(policy.NewStaticStore(p), store, quota.Admission())
				r := req
				r.Reserve = reserve
				b.ReportAllocs()
				for b.Loop() {
					d, err := pl.Place(snap, r)
					if err != nil {
						b.Fatal(err)
					}
					if d.Chosen == "" {
						b.Fatal(d.Summary)
					}
				}
			})
		}
	}
}

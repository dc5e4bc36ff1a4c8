package schedule_test

import (
	"fmt"
	"os"
	"time"

	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/quota"
	"github.com/berth-dev/berth/placement/reservation"
	"github.com/berth-dev/berth/placement/schedule"
)

// Wiring a Placer as cmd/berth-placement does: a policy store, a
// reservation store in the data directory, and the quota admission. The
// snapshot here is built by hand; berth-placement reads it from PromQL
// (promsource).
func Example() {
	dir, err := os.MkdirTemp("", "berth-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	policies := policy.NewStaticStore(policy.Default())
	store, err := reservation.Open(dir, time.Now)
	if err != nil {
		panic(err)
	}
	defer store.Close()
	placer := schedule.NewPlacer(policies, store, quota.Admission())

	now := time.Now()
	snap := &placement.Snapshot{Taken: now, Servers: map[string]*placement.ServerState{
		"app-1": {
			Name: "app-1", Role: placement.RoleApp, LastSeen: now,
			CPU:    placement.CPUState{Cores: 4},
			Memory: placement.MemoryState{TotalBytes: 8 << 30, AvailableBytes: 6 << 30, PeakUsedBytes: 2 << 30},
			Disk:   placement.DiskState{SizeBytes: 100 << 30, AvailableBytes: 60 << 30, ThresholdRatio: 0.8},
		},
	}}
	req := placement.Request{
		Kind:         placement.KindDeployment,
		Requirements: placement.Resources{CPU: 1, Memory: 1 << 30},
		Reserve:      true,
	}
	dec, err := placer.Place(snap, req)
	if err != nil {
		panic(err)
	}
	fmt.Println(dec.Chosen, dec.Reservation.Resources.Memory)
	fmt.Println(dec.Summary)
	// Output:
	// app-1 1Gi
	// 1/1 servers can take this deployment
}

package fit_test

import (
	"fmt"
	"time"

	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/fit"
	"github.com/berth-dev/berth/placement/policy"
)

// A fit names every dimension that refuses: here 3 cores and 7 GiB on a
// 4-core, 8 GiB server already half used.
func ExampleServer() {
	p, err := policy.Parse([]byte("fit:\n  max_utilisation: {cpu: 0.9, memory: 0.9}\n"))
	if err != nil {
		panic(err)
	}
	s := &placement.ServerState{
		Name: "app-1", Role: placement.RoleApp, LastSeen: time.Now(),
		CPU:    placement.CPUState{Cores: 4, PeakUtilisation: 0.5},
		Memory: placement.MemoryState{TotalBytes: 8 << 30, AvailableBytes: 4 << 30, PeakUsedBytes: 4 << 30},
		Disk:   placement.DiskState{SizeBytes: 100 << 30, AvailableBytes: 60 << 30, ThresholdRatio: 0.8},
	}
	r := fit.Server(p, "app-1", s, placement.KindDeployment, placement.Resources{CPU: 3, Memory: 7 << 30}, placement.Resources{})
	fmt.Println(r.Fits, r.Reasons)
	cpu := r.Dimension(placement.DimensionCPU)
	fmt.Printf("cpu: requested %g, available %g of %g usable\n", cpu.Requested, cpu.Available, cpu.Usable)
	// Output:
	// false [insufficient_cpu insufficient_memory]
	// cpu: requested 3, available 1.6 of 3.6 usable
}

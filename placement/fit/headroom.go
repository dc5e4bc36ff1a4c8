package fit

import (
	"math"

	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/policy"
)

// Headroom is what a placement could still take on s now, per dimension
// (each dimension's Available, given what reserved holds), or nil when the
// server's data is not fresh: no capacity is promised on stale data. CPU
// is rounded down to 1/100 core (never more than there is), memory and disk
// to whole bytes.
func Headroom(p *policy.Policy, s *placement.ServerState, reserved placement.Resources) *placement.Resources {
	if FreshnessOf(p, s) != placement.Fresh {
		return nil
	}
	var h placement.Resources
	for _, d := range Dimensions(p, s, placement.Resources{}, reserved) {
		switch d.Dimension {
		case placement.DimensionCPU:
			// 1e-6 absorbs float noise just below a whole 1/100.
			h.CPU = placement.Cores(math.Floor(d.Available*100+1e-6) / 100)
		case placement.DimensionMemory:
			h.Memory = placement.Bytes(d.Available)
		case placement.DimensionDisk:
			h.Disk = placement.Bytes(d.Available)
		}
	}
	return &h
}

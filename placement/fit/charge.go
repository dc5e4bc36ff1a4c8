package fit

import (
	"math"

	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/policy"
)

// Charge is what a deployment asking for r counts as, everywhere Berth
// counts it: in fit, in the reservation that holds it, and in its
// organization's quota usage. A CPU or memory amount of 0 asks for no
// limit; the container then runs unlimited, and a running unlimited
// container is charged fit.default_request (DefaultRequest.Charge). So the
// request is charged that from the start, and nothing changes when the
// reservation gives way to the running container. Disk has no default: 0
// asks for none.
func Charge(p *policy.Policy, r placement.Resources) placement.Resources {
	if r.CPU == 0 {
		r.CPU = p.Fit.DefaultRequest.CPU
	}
	if r.Memory == 0 {
		r.Memory = p.Fit.DefaultRequest.Memory
	}
	return r
}

// Amounts are compared exactly: CPU in whole nanocores (Docker's NanoCPUs,
// the precision requests are given in), memory and disk in whole bytes.
// Sums of float cores drift (0.1+0.2); rounding both sides to nanocores
// before comparing removes the drift without tolerating a real excess, so
// fit and quotas refuse 6.000000001 cores against 6 alike.

// Nanocores converts cores to whole nanocores.
func Nanocores(cores float64) int64 { return int64(math.Round(cores * 1e9)) }

// fitsWithin reports whether requested fits in room for dimension d.
func fitsWithin(d placement.Dimension, requested, room float64) bool {
	if d == placement.DimensionCPU {
		return Nanocores(requested) <= Nanocores(room)
	}
	// Room comes from ratios of capacities (usable = total × 0.9): only
	// whole bytes of it can be taken.
	return requested <= math.Floor(room)
}

package fit

import (
	"math"

	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/policy"
)

// Score rates a server that fits, 0..100, higher is better. Spread scores
// the weighted share of usable capacity left after the placement (as
// Kubernetes' LeastAllocated); pack scores the share used (MostAllocated),
// so the fullest server that still fits wins and whole servers stay free.
func Score(p *policy.Policy, strategy placement.Strategy, dims []placement.DimensionFit) float64 {
	w := p.Scoring.Weights
	var sum, weights float64
	for _, d := range dims {
		var wd float64
		switch d.Dimension {
		case placement.DimensionCPU:
			wd = w.CPU
		case placement.DimensionMemory:
			wd = w.Memory
		case placement.DimensionDisk:
			wd = w.Disk
		}
		if wd == 0 || d.Usable <= 0 {
			continue
		}
		room := d.Usable - d.Used - d.Reserved // possibly negative
		free := clamp01((room - d.Requested) / d.Usable)
		if strategy == placement.StrategyPack {
			free = 1 - free
		}
		sum += wd * free
		weights += wd
	}
	if weights == 0 {
		return 0
	}
	// Two decimals: enough to rank, stable to read and to compare in tests.
	return math.Round(10000*sum/weights) / 100
}

func clamp01(v float64) float64 {
	return math.Min(math.Max(v, 0), 1)
}

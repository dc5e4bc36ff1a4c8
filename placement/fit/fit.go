// Package fit decides whether one server can take a placement, and how
// good a home it is: freshness, the feasibility pipeline with a reason per
// refusal (Server), one charging rule for requests (Charge), exact
// comparison in nanocores and bytes, and the strategies' scores. Every
// function is pure: a policy, a server and a request in, an answer out.
package fit

import (
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/policy"

	"math"
)

// FreshnessOf classifies a server by the age of its newest sample, and as
// Missing when a signal fit needs has no value or a capacity reads zero
// (no server has zero CPUs: a zero is absent data).
func FreshnessOf(p *policy.Policy, s *placement.ServerState) placement.Freshness {
	switch {
	case s.LastSeen.IsZero() || s.Age > p.Freshness.Stale:
		return placement.Missing
	case s.Age > p.Freshness.Fresh, s.Silent:
		return placement.Stale
	}
	if s.CapacityMissing {
		return placement.Missing
	}
	if s.CPU.Cores <= 0 || s.Memory.TotalBytes <= 0 || s.Disk.SizeBytes <= 0 {
		return placement.Missing
	}
	return placement.Fresh
}

// Server decides whether server s (nil: not in the fleet) can take a
// placement of kind needing req, given what open reservations already hold
// on it. It is the whole feasibility pipeline: existence, role, freshness,
// then every resource dimension, each failing one named.
func Server(p *policy.Policy, name string, s *placement.ServerState, kind placement.Kind, req, reserved placement.Resources) placement.FitResult {
	res, _ := AppendServer(p, name, s, kind, req, reserved, nil)
	return res
}

// AppendServer is FitServer appending the result's dimensions to buf and
// returning buf extended: Choose passes one array for the whole fleet, so a
// decision allocates its dimensions once instead of once per server. The
// result's Dimensions is capped at its own three elements, so appending to
// it never writes into a neighbour's.
func AppendServer(p *policy.Policy, name string, s *placement.ServerState, kind placement.Kind, req, reserved placement.Resources, buf []placement.DimensionFit) (placement.FitResult, []placement.DimensionFit) {
	res := placement.FitResult{Server: name}
	if s == nil {
		res.Reasons = []placement.Reason{placement.ReasonServerNotFound}
		return res, buf
	}
	if !placement.RoleAllows(s.Role, kind) {
		res.Reasons = []placement.Reason{placement.ReasonWrongRole}
		return res, buf
	}
	res.Freshness = FreshnessOf(p, s)
	switch res.Freshness {
	case placement.Stale:
		res.Reasons = []placement.Reason{placement.ReasonMetricsStale}
		return res, buf
	case placement.Missing:
		res.Reasons = []placement.Reason{placement.ReasonMetricsMissing}
		return res, buf
	}
	start := len(buf)
	buf = appendResources(p, buf, s, req, reserved)
	res.Dimensions = buf[start:len(buf):len(buf)]
	res.Fits = true
	for _, d := range res.Dimensions {
		if !d.Fits {
			res.Fits = false
			res.Reasons = append(res.Reasons, d.Reason)
		}
	}
	return res, buf
}

// Dimensions compares req with each dimension of a fresh server:
// requested ≤ usable − max(observed peak, allocated) − reserved. Builds
// reuse it and pick the dimensions they care about.
func Dimensions(p *policy.Policy, s *placement.ServerState, req, reserved placement.Resources) []placement.DimensionFit {
	return appendResources(p, make([]placement.DimensionFit, 0, 3), s, req, reserved)
}

// appendResources is FitResources appending the three dimensions to dst.
func appendResources(p *policy.Policy, dst []placement.DimensionFit, s *placement.ServerState, req, reserved placement.Resources) []placement.DimensionFit {
	defCPU, defMemory := p.Fit.DefaultRequest.Charge(s.Containers.UnlimitedCPU, s.Containers.UnlimitedMemory)

	cpuCap := s.CPU.Cores
	cpu := dimension(placement.DimensionCPU, float64(req.CPU), cpuCap, cpuCap*p.Fit.MaxUtilisation.CPU,
		s.CPU.PeakUtilisation*cpuCap,
		s.Containers.LimitedCPUCores+defCPU,
		float64(reserved.CPU), placement.ReasonInsufficientCPU)

	memCap := s.Memory.TotalBytes
	mem := dimension(placement.DimensionMemory, float64(req.Memory), memCap, memCap*p.Fit.MaxUtilisation.Memory,
		s.Memory.PeakUsedBytes,
		s.Containers.LimitedMemoryBytes+float64(defMemory),
		float64(reserved.Memory), placement.ReasonInsufficientMemory)

	// Disk has no declared allocations; its ceiling is the lower of the
	// policy's and the server's own threshold, as Coolify alerts on the
	// latter.
	diskCap := s.Disk.SizeBytes
	threshold, _ := DiskThreshold(p, s)
	ceiling := math.Min(p.Fit.MaxUtilisation.Disk, threshold)
	diskUsed := math.Max(diskCap-s.Disk.AvailableBytes, 0)
	disk := dimension(placement.DimensionDisk, float64(req.Disk), diskCap, diskCap*ceiling,
		diskUsed, 0, float64(reserved.Disk), placement.ReasonDiskThreshold)
	if physical := s.Disk.AvailableBytes - float64(reserved.Disk); !fitsWithin(placement.DimensionDisk, float64(req.Disk), physical) {
		disk.Fits, disk.Reason = false, placement.ReasonInsufficientDisk
	}
	return append(dst, cpu, mem, disk)
}

// ThresholdSource says where a server's disk threshold comes from.
type ThresholdSource string

// Threshold sources.
const (
	// ThresholdFromServer: the server publishes its own threshold
	// (berth_server_disk_usage_threshold_ratio).
	ThresholdFromServer ThresholdSource = "server"
	// ThresholdFromPolicy: it publishes none (or an invalid one), so the
	// policy's fit.default_disk_threshold applies.
	ThresholdFromPolicy ThresholdSource = "policy_default"
)

// DiskThreshold is the disk threshold fit uses for s (0..1) and where it
// comes from.
func DiskThreshold(p *policy.Policy, s *placement.ServerState) (float64, ThresholdSource) {
	if t := s.Disk.ThresholdRatio; t > 0 && t <= 1 {
		return t, ThresholdFromServer
	}
	return p.Fit.DefaultDiskThreshold, ThresholdFromPolicy
}

func dimension(d placement.Dimension, requested, capacity, usable, observed, allocated, reserved float64, reason placement.Reason) placement.DimensionFit {
	used := math.Max(observed, allocated)
	room := usable - used - reserved
	f := placement.DimensionFit{
		Dimension: d,
		Requested: requested,
		Available: math.Max(room, 0),
		Capacity:  capacity,
		Usable:    usable,
		Used:      used,
		Observed:  observed,
		Allocated: allocated,
		Reserved:  reserved,
		Fits:      fitsWithin(d, requested, room),
	}
	if !f.Fits {
		f.Reason = reason
	}
	return f
}

package placement

import (
	"math"
	"slices"
)

// fitSignals are the recording rules fit cannot decide without. Container
// sums are not among them: with no container running they have no series,
// which means zero.
var fitSignals = []string{
	"server:node_cpus:count",
	"server:node_cpu_utilisation:max15m",
	"server:node_memory_total:bytes",
	"server:node_memory_used_bytes:max15m",
	"server:node_filesystem_size:bytes_root",
	"server:node_filesystem_avail:bytes_root",
}

// FreshnessOf classifies a server by the age of its newest sample, and as
// Missing when a signal fit needs has no value or a capacity reads zero
// (no server has zero CPUs: a zero is absent data).
func (p *Policy) FreshnessOf(s *ServerState) Freshness {
	switch {
	case s.LastSeen.IsZero() || s.Age > p.Freshness.Stale:
		return Missing
	case s.Age > p.Freshness.Fresh, s.Silent:
		return Stale
	}
	for _, m := range s.Missing {
		if slices.Contains(fitSignals, m) {
			return Missing
		}
	}
	if s.CPU.Cores <= 0 || s.Memory.TotalBytes <= 0 || s.Disk.SizeBytes <= 0 {
		return Missing
	}
	return Fresh
}

// FitServer decides whether server s (nil: not in the fleet) can take a
// placement of kind needing req, given what open reservations already hold
// on it. It is the whole feasibility pipeline: existence, role, freshness,
// then every resource dimension, each failing one named.
func (p *Policy) FitServer(name string, s *ServerState, kind Kind, req, reserved Resources) FitResult {
	res, _ := p.fitServer(name, s, kind, req, reserved, nil)
	return res
}

// fitServer is FitServer appending the result's dimensions to buf and
// returning buf extended: Choose passes one array for the whole fleet, so a
// decision allocates its dimensions once instead of once per server. The
// result's Dimensions is capped at its own three elements, so appending to
// it never writes into a neighbour's.
func (p *Policy) fitServer(name string, s *ServerState, kind Kind, req, reserved Resources, buf []DimensionFit) (FitResult, []DimensionFit) {
	res := FitResult{Server: name}
	if s == nil {
		res.Reasons = []Reason{ReasonServerNotFound}
		return res, buf
	}
	if !RoleAllows(s.Role, kind) {
		res.Reasons = []Reason{ReasonWrongRole}
		return res, buf
	}
	res.Freshness = p.FreshnessOf(s)
	switch res.Freshness {
	case Stale:
		res.Reasons = []Reason{ReasonMetricsStale}
		return res, buf
	case Missing:
		res.Reasons = []Reason{ReasonMetricsMissing}
		return res, buf
	}
	start := len(buf)
	buf = p.appendFitResources(buf, s, req, reserved)
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

// FitResources compares req with each dimension of a fresh server:
// requested ≤ usable − max(observed peak, allocated) − reserved. Builds
// reuse it and pick the dimensions they care about.
func (p *Policy) FitResources(s *ServerState, req, reserved Resources) []DimensionFit {
	return p.appendFitResources(make([]DimensionFit, 0, 3), s, req, reserved)
}

// appendFitResources is FitResources appending the three dimensions to dst.
func (p *Policy) appendFitResources(dst []DimensionFit, s *ServerState, req, reserved Resources) []DimensionFit {
	defCPU, defMemory := p.Fit.DefaultRequest.Charge(s.Containers.UnlimitedCPU, s.Containers.UnlimitedMemory)

	cpuCap := s.CPU.Cores
	cpu := dimension(DimensionCPU, float64(req.CPU), cpuCap, cpuCap*p.Fit.MaxUtilisation.CPU,
		s.CPU.PeakUtilisation*cpuCap,
		s.Containers.LimitedCPUCores+defCPU,
		float64(reserved.CPU), ReasonInsufficientCPU)

	memCap := s.Memory.TotalBytes
	mem := dimension(DimensionMemory, float64(req.Memory), memCap, memCap*p.Fit.MaxUtilisation.Memory,
		s.Memory.PeakUsedBytes,
		s.Containers.LimitedMemoryBytes+float64(defMemory),
		float64(reserved.Memory), ReasonInsufficientMemory)

	// Disk has no declared allocations; its ceiling is the lower of the
	// policy's and the server's own threshold, as Coolify alerts on the
	// latter.
	diskCap := s.Disk.SizeBytes
	threshold, _ := p.DiskThreshold(s)
	ceiling := math.Min(p.Fit.MaxUtilisation.Disk, threshold)
	diskUsed := math.Max(diskCap-s.Disk.AvailableBytes, 0)
	disk := dimension(DimensionDisk, float64(req.Disk), diskCap, diskCap*ceiling,
		diskUsed, 0, float64(reserved.Disk), ReasonDiskThreshold)
	if physical := s.Disk.AvailableBytes - float64(reserved.Disk); !fitsWithin(DimensionDisk, float64(req.Disk), physical) {
		disk.Fits, disk.Reason = false, ReasonInsufficientDisk
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
func (p *Policy) DiskThreshold(s *ServerState) (float64, ThresholdSource) {
	if t := s.Disk.ThresholdRatio; t > 0 && t <= 1 {
		return t, ThresholdFromServer
	}
	return p.Fit.DefaultDiskThreshold, ThresholdFromPolicy
}

func dimension(d Dimension, requested, capacity, usable, observed, allocated, reserved float64, reason Reason) DimensionFit {
	used := math.Max(observed, allocated)
	room := usable - used - reserved
	f := DimensionFit{
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

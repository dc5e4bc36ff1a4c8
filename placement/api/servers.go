package api

import (
	"github.com/berth-dev/berth/placement/fit"
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/schedule"

	"math"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/placement"
)

const (
	mib = 1 << 20
	gib = 1 << 30
)

// ServerList is GET /api/v1/servers.
type ServerList struct {
	// TakenAt is when the fleet snapshot was read from Prometheus.
	TakenAt time.Time    `json:"taken_at"`
	Servers []ServerView `json:"servers"`
}

// ServerView is one server in the seed's system-metrics shape, plus what
// placement knows about it. Sizes in MB are MiB, in GB GiB (what free -m
// and df -BG print); percentages are 0..100.
type ServerView struct {
	Name         string        `json:"name"`
	Role         string        `json:"role"`
	Organization string        `json:"organization"`
	Freshness    FreshnessView `json:"freshness"`
	CPU          CPUView       `json:"cpu"`
	Memory       MemoryView    `json:"memory"`
	Disk         DiskView      `json:"disk"`
	Network      NetworkView   `json:"network"`
	Containers   ContainerView `json:"containers"`
	// Allocated is what running containers declare (limits, with the
	// policy's default request for each unlimited container).
	Allocated placement.Resources `json:"allocated"`
	// Reserved is held by open reservations on the server.
	Reserved placement.Resources `json:"reserved"`
	// Headroom is what a placement could still take now, per dimension
	// (fit's "available"); null when the server's data is not fresh.
	Headroom *placement.Resources `json:"headroom"`
	// Missing names recording rules that had no value for the server.
	Missing []string `json:"missing_signals"`
	// LastKnown names the signals shown with their last-known values: the
	// server stopped publishing them within the last hour.
	LastKnown []string `json:"last_known_signals"`
	// ContainerUsage says where the container figures come from:
	// current, last_known or unknown.
	ContainerUsage placement.Provenance `json:"container_usage"`
}

// FreshnessView is how current the server's data is.
type FreshnessView struct {
	State      placement.Freshness `json:"state"`
	AgeSeconds *float64            `json:"age_seconds"`
	LastSeen   *time.Time          `json:"last_seen"`
}

// CPUView is the seed's cpu block.
type CPUView struct {
	UsagePercent     float64 `json:"usage_percent"`
	PeakUsagePercent float64 `json:"peak_usage_percent"`
	// LoadAverage is the 1, 5 and 15 minute load averages.
	LoadAverage []float64 `json:"load_average"`
	CoreCount   float64   `json:"core_count"`
}

// MemoryView is the seed's memory block.
type MemoryView struct {
	TotalMB      float64 `json:"total_mb"`
	UsedMB       float64 `json:"used_mb"`
	AvailableMB  float64 `json:"available_mb"`
	UsagePercent float64 `json:"usage_percent"`
	PeakUsedMB   float64 `json:"peak_used_mb"`
}

// DiskView is the seed's disk block, for the root filesystem.
type DiskView struct {
	TotalGB      float64 `json:"total_gb"`
	UsedGB       float64 `json:"used_gb"`
	AvailableGB  float64 `json:"available_gb"`
	UsagePercent float64 `json:"usage_percent"`
	// ThresholdPercent is the threshold fit applies; ThresholdSource says
	// whether the server publishes it or the policy's default applies.
	ThresholdPercent float64             `json:"threshold_percent"`
	ThresholdSource  fit.ThresholdSource `json:"threshold_source"`
}

// NetworkView is the seed's network block: totals since boot, rates and
// established TCP connections.
type NetworkView struct {
	RxBytes          float64 `json:"rx_bytes"`
	TxBytes          float64 `json:"tx_bytes"`
	RxBytesPerSecond float64 `json:"rx_bytes_per_second"`
	TxBytesPerSecond float64 `json:"tx_bytes_per_second"`
	Connections      float64 `json:"connections"`
}

// ContainerView is what runs on the server.
type ContainerView struct {
	Running         int     `json:"running"`
	UnlimitedCPU    int     `json:"unlimited_cpu"`
	UnlimitedMemory int     `json:"unlimited_memory"`
	UsedCPUCores    float64 `json:"used_cpu_cores"`
	WorkingSetMB    float64 `json:"working_set_mb"`
	BuildsActive    int     `json:"builds_active"`
}

func (a *API) listServers(c echo.Context) error {
	role, org := c.QueryParam("role"), c.QueryParam("organization")
	if role != "" && role != placement.RoleApp && role != placement.RoleBuild {
		return invalidArgument("role", "role must be %q or %q, got %q", placement.RoleApp, placement.RoleBuild, role)
	}
	snap, err := a.snapshot(c.Request().Context())
	if err != nil {
		return err
	}
	p := a.opts.Policy.Policy()
	reserved := a.reservedByServer()
	out := ServerList{TakenAt: snap.Taken, Servers: []ServerView{}}
	for _, name := range sortedNames(snap) {
		s := snap.Servers[name]
		if (role != "" && s.Role != role) || (org != "" && s.Organization != org) {
			continue
		}
		out.Servers = append(out.Servers, serverView(p, s, reserved[name]))
	}
	return c.JSON(http.StatusOK, out)
}

func (a *API) getServer(c echo.Context) error {
	name := c.Param("server")
	snap, err := a.snapshot(c.Request().Context())
	if err != nil {
		return err
	}
	s, ok := snap.Servers[name]
	if !ok {
		return serverNotFound("server", name)
	}
	return c.JSON(http.StatusOK, serverView(a.opts.Policy.Policy(), s, a.reservedByServer()[name]))
}

func serverNotFound(field, name string) *Error {
	return notFound(field, "server %q is not in the fleet (GET %s/servers lists it)", name, Prefix)
}

func (a *API) reservedByServer() map[string]placement.Resources {
	return schedule.ReservedByServer(a.opts.Placer.Store().List())
}

func sortedNames(snap *placement.Snapshot) []string {
	names := make([]string, 0, len(snap.Servers))
	for n := range snap.Servers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func serverView(p *policy.Policy, s *placement.ServerState, reserved placement.Resources) ServerView {
	v := ServerView{
		Name:         s.Name,
		Role:         s.Role,
		Organization: s.Organization,
		Freshness:    FreshnessView{State: fit.FreshnessOf(p, s)},
		CPU: CPUView{
			UsagePercent:     percent(s.CPU.Utilisation),
			PeakUsagePercent: percent(s.CPU.PeakUtilisation),
			LoadAverage: []float64{
				round2(s.CPU.Load1PerCPU * s.CPU.Cores),
				round2(s.CPU.Load5PerCPU * s.CPU.Cores),
				round2(s.CPU.Load15PerCPU * s.CPU.Cores),
			},
			CoreCount: s.CPU.Cores,
		},
		Memory: MemoryView{
			TotalMB:     round2(s.Memory.TotalBytes / mib),
			UsedMB:      round2((s.Memory.TotalBytes - s.Memory.AvailableBytes) / mib),
			AvailableMB: round2(s.Memory.AvailableBytes / mib),
			PeakUsedMB:  round2(s.Memory.PeakUsedBytes / mib),
		},
		Disk: DiskView{
			TotalGB:     round2(s.Disk.SizeBytes / gib),
			UsedGB:      round2((s.Disk.SizeBytes - s.Disk.AvailableBytes) / gib),
			AvailableGB: round2(s.Disk.AvailableBytes / gib),
		},
		Network: NetworkView{
			RxBytes:          s.Network.ReceiveBytesTotal,
			TxBytes:          s.Network.TransmitBytesTotal,
			RxBytesPerSecond: round2(s.Network.ReceiveBytesPerSecond),
			TxBytesPerSecond: round2(s.Network.TransmitBytesPerSecond),
			Connections:      s.Network.EstablishedConnections,
		},
		Containers: ContainerView{
			Running:         s.Containers.Running,
			UnlimitedCPU:    s.Containers.UnlimitedCPU,
			UnlimitedMemory: s.Containers.UnlimitedMemory,
			UsedCPUCores:    round2(s.Containers.UsedCPUCores),
			WorkingSetMB:    round2(s.Containers.WorkingSetBytes / mib),
			BuildsActive:    s.Containers.BuildsActive,
		},
		Reserved:       reserved,
		Missing:        s.Missing,
		LastKnown:      s.LastKnown,
		ContainerUsage: s.ContainerUsage,
	}
	if v.ContainerUsage == "" {
		v.ContainerUsage = placement.Current
	}
	threshold, source := fit.DiskThreshold(p, s)
	v.Disk.ThresholdPercent, v.Disk.ThresholdSource = percent(threshold), source
	if v.Missing == nil {
		v.Missing = []string{}
	}
	if v.LastKnown == nil {
		v.LastKnown = []string{}
	}
	if s.Memory.TotalBytes > 0 {
		v.Memory.UsagePercent = percent(1 - s.Memory.AvailableBytes/s.Memory.TotalBytes)
	}
	if s.Disk.SizeBytes > 0 {
		v.Disk.UsagePercent = percent(1 - s.Disk.AvailableBytes/s.Disk.SizeBytes)
	}
	if !s.LastSeen.IsZero() {
		age := math.Round(s.Age.Seconds()*10) / 10
		last := s.LastSeen.UTC()
		v.Freshness.AgeSeconds, v.Freshness.LastSeen = &age, &last
	}
	dims := fit.Dimensions(p, s, placement.Resources{}, reserved)
	for _, d := range dims {
		switch d.Dimension {
		case placement.DimensionCPU:
			v.Allocated.CPU = placement.Cores(round2(d.Allocated))
		case placement.DimensionMemory:
			v.Allocated.Memory = placement.Bytes(d.Allocated)
		}
	}
	v.Headroom = fit.Headroom(p, s, reserved)
	return v
}

func percent(ratio float64) float64 { return round2(ratio * 100) }

func round2(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*100) / 100
}

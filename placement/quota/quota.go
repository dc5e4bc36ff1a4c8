// Package quota is organization quotas: usage from the snapshot plus open
// reservations (StatusOf), the Kubernetes-worded check of a deployment
// (CheckDeployment) and its admission inside the placement critical
// section (Admission), the servers to disable over max_servers (ExcessOf),
// and the quota metrics (Collector). Errors are typed; the HTTP API maps
// them.
package quota

import (
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/fit"
	"github.com/berth-dev/berth/placement/policy"

	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Resource is one dimension of an organization quota, named as in the
// resource label of berth_organization_usage and
// berth_organization_quota_limit.
type Resource string

// Quota dimensions.
const (
	Servers      Resource = "servers"
	Applications Resource = "applications"
	CPUCores     Resource = "cpu_cores"
	MemoryBytes  Resource = "memory_bytes"
)

// AllResources lists every quota dimension in the order answers use.
var AllResources = []Resource{Servers, Applications, CPUCores, MemoryBytes}

// word is the dimension's name in quota messages, Kubernetes' short form
// for cpu and memory.
func (r Resource) word() string {
	switch r {
	case CPUCores:
		return "cpu"
	case MemoryBytes:
		return "memory"
	}
	return string(r)
}

// format writes an amount of the dimension as a quota message shows it:
// memory in Kubernetes' binary quantities (2Gi, 1536Mi, else bytes), CPU in
// cores as Docker's --cpus takes it (1.5), counts as integers.
func (r Resource) format(v float64) string {
	switch r {
	case MemoryBytes:
		return placement.Bytes(math.Round(v)).String()
	case CPUCores:
		// Sums of float cores drift (0.1+0.2); Docker's precision is 1e-9.
		return strconv.FormatFloat(math.Round(v*1e9)/1e9, 'f', -1, 64)
	}
	return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
}

// Usage is an amount per quota dimension: what an organization uses,
// requests or would use.
type Usage struct {
	Servers      int     `json:"servers"`
	Applications int     `json:"applications"`
	CPUCores     float64 `json:"cpu_cores"`
	MemoryBytes  int64   `json:"memory_bytes"`
}

// Get returns the amount of one dimension.
func (u Usage) Get(r Resource) float64 {
	switch r {
	case Servers:
		return float64(u.Servers)
	case Applications:
		return float64(u.Applications)
	case CPUCores:
		return u.CPUCores
	case MemoryBytes:
		return float64(u.MemoryBytes)
	}
	return 0
}

// Add returns u + o.
func (u Usage) Add(o Usage) Usage {
	return Usage{
		Servers:      u.Servers + o.Servers,
		Applications: u.Applications + o.Applications,
		CPUCores:     u.CPUCores + o.CPUCores,
		MemoryBytes:  u.MemoryBytes + o.MemoryBytes,
	}
}

// Limits are an organization's limits in the units of
// QuotaUsage. nil is unlimited (JSON null); 0 allows none.
type Limits struct {
	Servers      *int     `json:"servers"`
	Applications *int     `json:"applications"`
	CPUCores     *float64 `json:"cpu_cores"`
	MemoryBytes  *int64   `json:"memory_bytes"`
}

// Get returns one dimension's limit and whether there is one.
func (l Limits) Get(r Resource) (float64, bool) {
	switch r {
	case Servers:
		if l.Servers != nil {
			return float64(*l.Servers), true
		}
	case Applications:
		if l.Applications != nil {
			return float64(*l.Applications), true
		}
	case CPUCores:
		if l.CPUCores != nil {
			return *l.CPUCores, true
		}
	case MemoryBytes:
		if l.MemoryBytes != nil {
			return float64(*l.MemoryBytes), true
		}
	}
	return 0, false
}

// Any reports whether at least one dimension is limited.
func (l Limits) Any() bool {
	return l.Servers != nil || l.Applications != nil || l.CPUCores != nil || l.MemoryBytes != nil
}

// LimitsOf converts the policy's limits to Usage units: max_memory_gb
// is GiB (2³⁰ bytes, Kubernetes' Gi), truncated to whole bytes.
func LimitsOf(q policy.QuotaLimits) Limits {
	var v Limits
	if q.MaxServers != nil {
		n := *q.MaxServers
		v.Servers = &n
	}
	if q.MaxApplications != nil {
		n := *q.MaxApplications
		v.Applications = &n
	}
	if q.MaxCPUCores != nil {
		c := float64(*q.MaxCPUCores)
		v.CPUCores = &c
	}
	if q.MaxMemoryGB != nil {
		// A limit beyond int64 (the policy caps no size) is as good as
		// unlimited but must stay a limit, not wrap around.
		b := int64(math.MaxInt64)
		if gb := *q.MaxMemoryGB * (1 << 30); gb < math.MaxInt64 {
			b = int64(gb)
		}
		v.MemoryBytes = &b
	}
	return v
}

// LimitsFor returns org's limits; an organization the policy does not
// list is unlimited in every dimension.
func LimitsFor(p *policy.Policy, org string) Limits {
	return LimitsOf(p.Quotas.Organizations[org])
}

// Status is one organization's usage against its limits, with the
// parts the usage is made of so an operator can see where it comes from.
type Status struct {
	Organization string `json:"organization"`
	Usage        Usage  `json:"usage"`
	Limits       Limits `json:"limits"`
	// Compliant is false when some dimension is over its limit (at the
	// limit is compliant, as in Kubernetes), and when the usage of some
	// server of the organization is unknown (Breakdown.UnknownServers):
	// missing data never makes an organization compliant.
	Compliant  bool        `json:"compliant"`
	Violations []Violation `json:"violations"`
	Breakdown  Breakdown   `json:"breakdown"`
}

// Violation is a dimension over its limit.
type Violation struct {
	Resource Resource `json:"resource"`
	Used     float64  `json:"used"`
	Limit    float64  `json:"limit"`
	// Message reads like Kubernetes': "exceeded quota: acme, used:
	// servers=3, limited: servers=2".
	Message string `json:"message"`
}

// Breakdown is what an organization's usage is made of.
type Breakdown struct {
	// Servers are the servers whose berth_server_info carries the
	// organization, sorted by name.
	Servers []string `json:"servers"`
	// ApplicationIDs are the distinct applications running (managed
	// containers; preview deployments share their application's id).
	ApplicationIDs []string `json:"application_ids"`
	// Containers are the managed running containers' declared limits and
	// the ones without a limit, charged the policy's default request.
	Containers Containers `json:"containers"`
	// Reserved is what the organization's open deployment reservations add.
	Reserved Reserved `json:"reserved"`
	// Disk is the root filesystems of the organization's servers
	// (reported, not limited).
	Disk Disk `json:"disk"`
	// LastKnownServers are servers that stopped publishing their usage:
	// they count with their last-known figures (within the last hour, as
	// long as the server itself counts).
	LastKnownServers []string `json:"last_known_servers"`
	// UnknownServers are servers whose usage is not known at all; while
	// one is listed, usage is a lower bound, the organization is not
	// compliant and placements it would charge are refused.
	UnknownServers []string `json:"unknown_servers"`
}

// Containers splits container usage into declared limits and the
// default charged for unlimited containers.
type Containers struct {
	LimitedCPUCores    float64 `json:"limited_cpu_cores"`
	LimitedMemoryBytes int64   `json:"limited_memory_bytes"`
	UnlimitedCPU       int     `json:"unlimited_cpu"`
	UnlimitedMemory    int     `json:"unlimited_memory"`
	// DefaultCPUCores and DefaultMemoryBytes are what the unlimited ones
	// are charged in total (count × fit.default_request).
	DefaultCPUCores    float64 `json:"default_cpu_cores"`
	DefaultMemoryBytes int64   `json:"default_memory_bytes"`
}

// Reserved is the share of usage held by open reservations.
type Reserved struct {
	Reservations int     `json:"reservations"`
	CPUCores     float64 `json:"cpu_cores"`
	MemoryBytes  int64   `json:"memory_bytes"`
	// ApplicationIDs are reserved applications not running yet; each
	// counts as one application.
	ApplicationIDs []string `json:"application_ids"`
}

// Disk is disk use on the organization's servers.
type Disk struct {
	UsedBytes int64 `json:"used_bytes"`
	SizeBytes int64 `json:"size_bytes"`
}

// charge is what resources count against a quota: CPU and memory
// (disk is not a quota dimension), charged by Policy.Charge.
func charge(p *policy.Policy, r placement.Resources) (cpuCores float64, memoryBytes int64) {
	c := fit.Charge(p, r)
	return float64(c.CPU), int64(c.Memory)
}

// countsAgainstQuota reports whether a reservation is charged to its
// organization: deployments only. Build containers carry no organization
// in metrics (Coolify's helper has no labels), so a build counted while
// reserved would vanish from usage once it runs.
func countsAgainstQuota(r *placement.Reservation) bool {
	return r.Kind == placement.KindDeployment && r.Organization != ""
}

// Organizations lists every organization known to the snapshot (its
// servers or organization rules), the policy's quotas or open
// reservations, sorted.
func Organizations(p *policy.Policy, snap *placement.Snapshot, open []placement.Reservation) []string {
	set := map[string]bool{}
	for org := range p.Quotas.Organizations {
		set[org] = true
	}
	if snap != nil {
		for org := range snap.Organizations {
			set[org] = true
		}
		for _, s := range snap.Servers {
			if s.Organization != "" {
				set[s.Organization] = true
			}
		}
	}
	for i := range open {
		if countsAgainstQuota(&open[i]) {
			set[open[i].Organization] = true
		}
	}
	delete(set, "")
	return slices.Sorted(maps.Keys(set))
}

// Knows reports whether org is one of QuotaOrganizations.
func Knows(p *policy.Policy, snap *placement.Snapshot, open []placement.Reservation, org string) bool {
	return org != "" && slices.Contains(Organizations(p, snap, open), org)
}

// StatusOf computes org's usage from the snapshot (the organization
// recording rules; unlimited containers at the policy's default request)
// plus its open deployment reservations, and compares it with its limits.
func StatusOf(p *policy.Policy, snap *placement.Snapshot, org string, open []placement.Reservation) Status {
	st := Status{Organization: org, Limits: LimitsFor(p, org)}
	b := &st.Breakdown
	b.Servers = []string{}
	b.ApplicationIDs = []string{}
	b.Reserved.ApplicationIDs = []string{}
	b.LastKnownServers, b.UnknownServers = []string{}, []string{}

	var ou *placement.OrganizationUsage
	if snap != nil {
		ou = snap.Organizations[org]
		for name, s := range snap.Servers {
			if s.Organization != org {
				continue
			}
			b.Servers = append(b.Servers, name)
			b.Disk.SizeBytes += int64(s.Disk.SizeBytes)
			b.Disk.UsedBytes += int64(max(0, s.Disk.SizeBytes-s.Disk.AvailableBytes))
		}
		slices.Sort(b.Servers)
	}
	// The servers rule and the snapshot's server list both cover servers
	// seen within the last hour; the larger wins so that neither one's
	// evaluation lag hides a server.
	st.Usage.Servers = len(b.Servers)
	if ou != nil {
		st.Usage.Servers = max(ou.Servers, len(b.Servers))
		st.Usage.Applications = ou.Applications
		b.ApplicationIDs = append(b.ApplicationIDs, ou.ApplicationIDs...)
		b.LastKnownServers = append(b.LastKnownServers, ou.LastKnownServers...)
		b.UnknownServers = append(b.UnknownServers, ou.UnknownServers...)
		c := &b.Containers
		c.LimitedCPUCores = ou.LimitedCPUCores
		c.LimitedMemoryBytes = int64(math.Round(ou.LimitedMemoryBytes))
		c.UnlimitedCPU, c.UnlimitedMemory = ou.UnlimitedCPU, ou.UnlimitedMemory
		c.DefaultCPUCores, c.DefaultMemoryBytes = p.Fit.DefaultRequest.Charge(ou.UnlimitedCPU, ou.UnlimitedMemory)
		st.Usage.CPUCores = c.LimitedCPUCores + c.DefaultCPUCores
		st.Usage.MemoryBytes = c.LimitedMemoryBytes + c.DefaultMemoryBytes
	}

	running := map[string]bool{}
	for _, id := range b.ApplicationIDs {
		running[id] = true
	}
	for i := range open {
		r := &open[i]
		if !countsAgainstQuota(r) || r.Organization != org {
			continue
		}
		cpu, mem := charge(p, r.Resources)
		b.Reserved.Reservations++
		b.Reserved.CPUCores += cpu
		b.Reserved.MemoryBytes += mem
		if id := r.ApplicationID; id != "" && !running[id] && !slices.Contains(b.Reserved.ApplicationIDs, id) {
			b.Reserved.ApplicationIDs = append(b.Reserved.ApplicationIDs, id)
		}
	}
	slices.Sort(b.Reserved.ApplicationIDs)
	st.Usage.CPUCores += b.Reserved.CPUCores
	st.Usage.MemoryBytes += b.Reserved.MemoryBytes
	st.Usage.Applications += len(b.Reserved.ApplicationIDs)

	st.Violations = []Violation{}
	for _, r := range AllResources {
		limit, ok := st.Limits.Get(r)
		if !ok || !over(r, st.Usage.Get(r), limit) {
			continue
		}
		used := st.Usage.Get(r)
		st.Violations = append(st.Violations, Violation{
			Resource: r, Used: used, Limit: limit,
			Message: fmt.Sprintf("exceeded quota: %s, used: %s=%s, limited: %s=%s", org, r.word(), r.format(used), r.word(), r.format(limit)),
		})
	}
	st.Compliant = len(st.Violations) == 0 && len(b.UnknownServers) == 0
	return st
}

// HasApplication reports whether id runs or is reserved for the
// organization, i.e. deploying it adds no application.
func (s *Status) HasApplication(id string) bool {
	return slices.Contains(s.Breakdown.ApplicationIDs, id) || slices.Contains(s.Breakdown.Reserved.ApplicationIDs, id)
}

// over compares exactly, as fit does: cores in whole nanocores, counts
// and bytes as the whole numbers they are.
func over(r Resource, v, limit float64) bool {
	if r == CPUCores {
		return fit.Nanocores(v) > fit.Nanocores(limit)
	}
	return v > limit
}

// Check answers whether an organization may deploy something: what it
// would be charged, its usage before and after, and every dimension the
// deployment would take over its limit.
type Check struct {
	Organization string     `json:"organization"`
	Allowed      bool       `json:"allowed"`
	Requested    Usage      `json:"requested"`
	Usage        Usage      `json:"usage"`
	Projected    Usage      `json:"projected"`
	Limits       Limits     `json:"limits"`
	Exceeded     []Exceeded `json:"exceeded"`
	// UnknownServers are the organization's servers whose usage is not
	// known (current or last-known): with a limit on what the deployment
	// requests, the check cannot be made and the deployment is refused.
	UnknownServers []string `json:"unknown_servers"`
	// Messages holds one Kubernetes-worded line per exceeded dimension,
	// and one naming the servers whose usage is unknown.
	Messages []string `json:"messages"`
}

// Exceeded is a dimension a deployment would take over its limit.
type Exceeded struct {
	Resource  Resource `json:"resource"`
	Requested float64  `json:"requested"`
	Used      float64  `json:"used"`
	Limit     float64  `json:"limit"`
	// Message is Kubernetes' wording: "exceeded quota: acme, requested:
	// memory=2Gi, used: memory=31Gi, limited: memory=32Gi".
	Message string `json:"message"`
}

// CheckDeployment projects a deployment of req onto the organization's status.
// newApplication charges one application. As in Kubernetes' ResourceQuota
// admission, only dimensions the deployment requests are checked (a
// deployment of an existing application is not refused because the
// organization is over its application limit), and a dimension is exceeded
// when used + requested > limit: using all of a quota is allowed, and a
// limit of 0 refuses any request of that dimension. Servers are never
// requested by a deployment; they are enforced by ExcessServers.
func CheckDeployment(p *policy.Policy, st *Status, req placement.Resources, newApplication bool) Check {
	c := Check{Organization: st.Organization, Allowed: true, Usage: st.Usage, Limits: st.Limits,
		Exceeded: []Exceeded{}, UnknownServers: []string{}, Messages: []string{}}
	c.Requested.CPUCores, c.Requested.MemoryBytes = charge(p, req)
	if newApplication {
		c.Requested.Applications = 1
	}
	c.Projected = c.Usage.Add(c.Requested)
	limited := false
	for _, r := range AllResources {
		requested := c.Requested.Get(r)
		limit, ok := c.Limits.Get(r)
		limited = limited || ok && requested > 0
		if !ok || requested <= 0 || !over(r, c.Projected.Get(r), limit) {
			continue
		}
		used := c.Usage.Get(r)
		e := Exceeded{Resource: r, Requested: requested, Used: used, Limit: limit,
			Message: fmt.Sprintf("exceeded quota: %s, requested: %s=%s, used: %s=%s, limited: %s=%s",
				st.Organization, r.word(), r.format(requested), r.word(), r.format(used), r.word(), r.format(limit))}
		c.Exceeded = append(c.Exceeded, e)
		c.Messages = append(c.Messages, e.Message)
	}
	if unknown := st.Breakdown.UnknownServers; limited && len(unknown) > 0 {
		c.UnknownServers = append(c.UnknownServers, unknown...)
		c.Messages = append(c.Messages, unknownUsageMessage(st.Organization, unknown))
	}
	c.Allowed = len(c.Exceeded) == 0 && len(c.UnknownServers) == 0
	return c
}

func unknownUsageMessage(org string, servers []string) string {
	return fmt.Sprintf("quota usage of %s unknown: %s published no container usage within the last hour",
		org, strings.Join(servers, ", "))
}

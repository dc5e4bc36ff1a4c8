package placement

import (
	"maps"
	"slices"
)

// OrganizationsOf sums the usage of each organization over the servers
// that carry it: their managed containers and the applications running on
// them. A server's figures count whatever their provenance: current, or
// last-known for a server that stopped publishing them (listed in
// LastKnownServers). A server whose usage is unknown adds nothing and is
// listed in UnknownServers, so that nobody reads its absence as zero.
// Servers without an organization are shared and count for none.
func OrganizationsOf(servers map[string]*ServerState) map[string]*OrganizationUsage {
	out := map[string]*OrganizationUsage{}
	apps := map[string]map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(servers)) {
		s := servers[name]
		if s.Organization == "" {
			continue
		}
		o := out[s.Organization]
		if o == nil {
			o = &OrganizationUsage{Name: s.Organization}
			out[s.Organization] = o
			apps[s.Organization] = map[string]bool{}
		}
		o.Servers++
		switch s.ContainerUsage {
		case Unknown:
			o.UnknownServers = append(o.UnknownServers, name)
			continue
		case LastKnown:
			o.LastKnownServers = append(o.LastKnownServers, name)
		}
		m := s.Containers.Managed
		o.LimitedCPUCores += m.LimitedCPUCores
		o.LimitedMemoryBytes += m.LimitedMemoryBytes
		o.UnlimitedCPU += m.UnlimitedCPU
		o.UnlimitedMemory += m.UnlimitedMemory
		for app := range s.Applications {
			apps[s.Organization][app] = true
		}
	}
	for org, o := range out {
		o.ApplicationIDs = slices.Sorted(maps.Keys(apps[org]))
		o.Applications = len(o.ApplicationIDs)
	}
	return out
}

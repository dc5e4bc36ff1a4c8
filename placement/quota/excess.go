package quota

import (
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/policy"
)

// Excess is Coolify's ServerLimitCheckJob for one organization:
// when it has more servers than max_servers, which ones the deployer should
// force-disable.
//
// The choice is by name: servers are sorted by name (byte order), the first
// max_servers are kept and the rest are excess. Coolify disables the most
// recently created servers, but Berth has no creation time (boot time
// changes on every reboot, so it would move the choice around), and the
// choice must not change from one call to the next while the fleet does
// not: a name order is stable, reproducible and easy to steer by naming.
type Excess struct {
	Organization string `json:"organization"`
	// MaxServers is the limit; nil (unlimited) never has excess servers.
	MaxServers *int `json:"max_servers"`
	// Servers counts the organization's servers.
	Servers int `json:"servers"`
	// Keep are the servers within the limit, Excess the ones to disable;
	// both sorted by name.
	Keep   []string `json:"keep"`
	Excess []string `json:"excess"`
	// Rule says how the choice was made, for the deployer's logs.
	Rule string `json:"rule"`
}

// ExcessServerRule is the rule ExcessServers applies, as returned in Rule.
const ExcessServerRule = "servers sorted by name; the first max_servers are kept, the others are excess"

// ExcessOf lists which of org's servers exceed its max_servers.
func ExcessOf(p *policy.Policy, snap *placement.Snapshot, org string) Excess {
	st := StatusOf(p, snap, org, nil)
	names := st.Breakdown.Servers
	out := Excess{Organization: org, MaxServers: st.Limits.Servers, Servers: len(names),
		Keep: names, Excess: []string{}, Rule: ExcessServerRule}
	if limit := st.Limits.Servers; limit != nil && len(names) > *limit {
		out.Keep, out.Excess = names[:*limit], names[*limit:]
	}
	return out
}

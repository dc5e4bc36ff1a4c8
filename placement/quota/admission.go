package quota

import (
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/schedule"

	"strings"
)

// ExceededError is a placement refused because the organization's quota
// would be exceeded. Its message is Kubernetes' wording, one line per
// exceeded dimension joined by "; ".
type ExceededError struct {
	Organization string
	Exceeded     []Exceeded
}

func (e *ExceededError) Error() string {
	msgs := make([]string, len(e.Exceeded))
	for i, x := range e.Exceeded {
		msgs[i] = x.Message
	}
	return strings.Join(msgs, "; ")
}

// UsageUnknownError is a placement refused because the usage of some
// of the organization's servers is not known, so its quota cannot be
// checked. Missing data is never taken as zero usage.
type UsageUnknownError struct {
	Organization string
	Servers      []string
}

func (e *UsageUnknownError) Error() string {
	return unknownUsageMessage(e.Organization, e.Servers)
}

// Admission enforces organization quotas inside the Placer's critical
// section: the usage it checks includes every open reservation the
// decision saw, and the reservation it allows is written before the next
// placement reads them, so concurrent placements cannot together overshoot
// a quota.
//
// It checks deployments with an organization; builds and placements
// without an organization pass. A deployment adds an application when its
// application_id is neither running nor reserved for the organization; a
// deployment without application_id is charged no application.
func Admission() schedule.Admission {
	return schedule.AdmissionFunc(func(in *schedule.AdmissionInput) error {
		req := in.Request
		if req.Kind != placement.KindDeployment || req.Organization == "" {
			return nil
		}
		limits := LimitsFor(in.Policy, req.Organization)
		if !limits.Any() {
			return nil
		}
		st := StatusOf(in.Policy, in.Snapshot, req.Organization, in.Open)
		newApp := req.ApplicationID != "" && !st.HasApplication(req.ApplicationID)
		c := CheckDeployment(in.Policy, &st, req.Requirements, newApp)
		switch {
		case c.Allowed:
			return nil
		case len(c.Exceeded) > 0:
			return &ExceededError{Organization: req.Organization, Exceeded: c.Exceeded}
		}
		return &UsageUnknownError{Organization: req.Organization, Servers: c.UnknownServers}
	})
}

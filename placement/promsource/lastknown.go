package promsource

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/berth-dev/berth/placement"
)

// A server that stops answering keeps counting with its last-known values
// for as long as the server itself is counted (an hour, like
// organization:berth_servers:count): quotas must not forget the containers
// still running there, and build loads must not show an idle server. The
// instant rules query cannot see those values (recording rules stop with
// their input), so the same selector is read once more for those servers,
// at the moment each was last seen (PromQL's @ modifier): what the rules
// held then (at most one rule evaluation behind its last sample),
// applications that had already stopped excluded.
//
// A server's last-seen time only moves while it answers, so what was read
// for one (server, last seen) pair stays true: it is kept and the query is
// made only for servers that went silent since the previous snapshot.

// lastKnownBatch bounds the servers read by one last-known query.
const lastKnownBatch = 50

// lastKnown is what one silent server reported last.
type lastKnown struct {
	at      time.Time
	samples []*model.Sample
}

// silentServers lists the servers seen within the last hour that no longer
// answer, sorted.
func silentServers(snap *placement.Snapshot) []string {
	var out []string
	for name, st := range snap.Servers {
		if !st.LastSeen.IsZero() && st.Silent {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// lastKnownQuery reads the signals of some servers at their last-seen
// times.
type lastKnownQuery struct {
	expr    string
	servers []string
}

// lastKnownQueries are the queries reading the signals of servers (name →
// last seen) at their last-seen times: servers last seen at the same
// instant share one selector, and each query reads at most lastKnownBatch
// servers.
func lastKnownQueries(servers map[string]time.Time) []lastKnownQuery {
	byTime := map[int64][]string{}
	for name, at := range servers {
		ms := at.UnixMilli()
		byTime[ms] = append(byTime[ms], name)
	}
	var (
		queries []lastKnownQuery
		parts   []string
		covered []string
	)
	n := 0
	flush := func() {
		if len(parts) > 0 {
			queries = append(queries, lastKnownQuery{expr: strings.Join(parts, " or "), servers: covered})
			parts, covered, n = nil, nil, 0
		}
	}
	for _, ms := range slices.Sorted(func(yield func(int64) bool) {
		for ms := range byTime {
			if !yield(ms) {
				return
			}
		}
	}) {
		names := byTime[ms]
		slices.Sort(names)
		for len(names) > 0 {
			k := min(len(names), lastKnownBatch-n)
			quoted := make([]string, k)
			for i, s := range names[:k] {
				quoted[i] = regexp.QuoteMeta(s)
			}
			parts = append(parts, fmt.Sprintf(`{__name__=~%s, server=~%s} @ %s`,
				strconv.Quote(lastKnownNames), strconv.Quote(strings.Join(quoted, "|")),
				strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64)))
			covered = append(covered, names[:k]...)
			names, n = names[k:], n+k
			if n == lastKnownBatch {
				flush()
			}
		}
	}
	flush()
	return queries
}

// lastKnownNames is the name alternation of every server signal and the
// applications rule.
var lastKnownNames = func() string {
	names := []string{serverApplicationsRule}
	for name := range serverSignals {
		names = append(names, name)
	}
	slices.Sort(names)
	return strings.Join(names, "|")
}()

// fillLastKnown sets, on each server, the signals it lacks now from the
// samples it last reported, and lists them in LastKnown; its applications
// too when its containers are not reported now.
func fillLastKnown(snap *placement.Snapshot, samples []*model.Sample) {
	var apps []*model.Sample
	for _, sample := range samples {
		m, v := sample.Metric, float64(sample.Value)
		st := snap.Servers[string(m["server"])]
		if st == nil || math.IsNaN(v) {
			continue
		}
		rule := string(m[model.MetricNameLabel])
		if rule == serverApplicationsRule {
			apps = append(apps, sample)
			continue
		}
		set, ok := serverSignals[rule]
		if !ok || !slices.Contains(st.Missing, rule) || slices.Contains(st.LastKnown, rule) {
			continue
		}
		set(st, v)
		st.LastKnown = append(st.LastKnown, rule)
	}
	for _, st := range snap.Servers {
		slices.Sort(st.LastKnown)
	}
	// Applications come from the last-known series only for a server that
	// reports none now: current ones are never counted twice.
	current := map[string]bool{}
	for name, st := range snap.Servers {
		current[name] = st.Applications != nil
	}
	for _, a := range apps {
		name := string(a.Metric["server"])
		if st := snap.Servers[name]; !current[name] && containerProvenance(st) == placement.LastKnown {
			addApplication(st, a.Metric, float64(a.Value))
		}
	}
}

// containerProvenance is where st's container figures come from.
func containerProvenance(st *placement.ServerState) placement.Provenance {
	p := placement.Current
	for _, rule := range containerSignals {
		switch {
		case !slices.Contains(st.Missing, rule):
		case slices.Contains(st.LastKnown, rule):
			p = placement.LastKnown
		default:
			return placement.Unknown
		}
	}
	return p
}

// finish sets what follows from the servers' signals: each server's
// container provenance and the organizations' usage.
func finish(snap *placement.Snapshot) {
	for _, st := range snap.Servers {
		st.ContainerUsage = containerProvenance(st)
	}
	snap.Organizations = placement.OrganizationsOf(snap.Servers)
}

package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// knownAnswer is a stat panel whose value the live fleet determines: the
// panel must not only show data but the right number.
type knownAnswer struct {
	dashboard, panel string
	want             float64
	why              string
}

// liveKnownAnswers follow from the live test's setup: 4 simulated servers
// (seed 1: one build server running two builds, organizations org-1 and
// org-2) plus the real servers real-1 in org-1 and real-build (a build
// server, its one build finished and removed) in org-2, and a policy
// allowing org-1 one server.
var liveKnownAnswers = []knownAnswer{
	{"berth-fleet-capacity", "Servers", 6, "4 simulated servers, real-1 and real-build"},
	{"berth-fleet-capacity", "Stale or down", 0, "every server answers"},
	{"berth-build-servers", "Build servers", 2, "--build-servers=1 and real-build"},
	{"berth-build-servers", "Running builds", 2, "seed 1 gives the simulated build server two helper containers; real-build's build has finished"},
	{"berth-organizations", "Organizations", 2, "org-1 and org-2"},
	{"berth-organizations", "Over quota", 1, "org-1 has 3 servers, its quota allows 1"},
	{"berth-placement-api", "Prometheus source", 1, "the embedded store answers"},
}

func checkKnownAnswers(t *testing.T, c *promClient) {
	ctx := context.Background()
	dashboards := map[string]*dashboardDoc{}
	for _, d := range loadDashboards(t) {
		dashboards[d.UID] = d
	}
	for _, k := range liveKnownAnswers {
		d := dashboards[k.dashboard]
		if d == nil {
			t.Errorf("no dashboard %s", k.dashboard)
			continue
		}
		var target *targetDoc
		for _, p := range d.allPanels() {
			if p.Title == k.panel && len(p.Targets) == 1 {
				target = &p.Targets[0]
			}
		}
		if target == nil {
			t.Errorf("%s: no single-query panel %q", k.dashboard, k.panel)
			continue
		}
		expr, err := substitute(target.Expr, staticValues(d))
		if err != nil {
			t.Fatal(err)
		}
		// The store catches up with the fleet within a few scrapes
		// (placement's own metrics arrive through its self-scrape).
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, err := c.value(ctx, expr)
			if err == nil && math.Abs(got-k.want) < 1e-9 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s / %s shows %v (%v), want %v (%s)\n  %s", k.dashboard, k.panel, got, err, k.want, k.why, expr)
				break
			}
			time.Sleep(time.Second)
		}
	}
}

// value runs an instant query that must answer exactly one sample.
func (c *promClient) value(ctx context.Context, expr string) (float64, error) {
	data, err := c.get(ctx, "/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return 0, err
	}
	return singleValue(data)
}

// singleValue reads a one-sample instant vector.
func singleValue(data json.RawMessage) (float64, error) {
	var qd struct {
		Result []struct {
			Value []any `json:"value"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &qd); err != nil {
		return 0, err
	}
	if len(qd.Result) != 1 || len(qd.Result[0].Value) != 2 {
		return 0, fmt.Errorf("want one sample, got %s", data)
	}
	s, _ := qd.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

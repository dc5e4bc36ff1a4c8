package dashboards

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// allowEntry is a panel query that may return no data in the live test,
// with the condition under which it shows something.
type allowEntry struct {
	Dashboard string `yaml:"dashboard"` // uid
	Panel     string `yaml:"panel"`
	RefID     string `yaml:"ref_id"` // empty: every query of the panel
	Reason    string `yaml:"reason"`
}

const allowlistFile = "testdata/live-allowlist.yml"

func loadAllowlist(t *testing.T, dashboards []*dashboardDoc) []allowEntry {
	t.Helper()
	raw, err := os.ReadFile(allowlistFile)
	if err != nil {
		t.Fatal(err)
	}
	var entries []allowEntry
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&entries); err != nil && err != io.EOF {
		t.Fatalf("%s: %v", allowlistFile, err)
	}
	// Every entry must name an existing panel and say why: a stale or
	// unexplained entry would hide a broken panel.
	for _, e := range entries {
		if strings.TrimSpace(e.Reason) == "" {
			t.Errorf("%s: entry %s / %s has no reason", allowlistFile, e.Dashboard, e.Panel)
		}
		found := false
		for _, d := range dashboards {
			if d.UID != e.Dashboard {
				continue
			}
			for _, q := range d.queries() {
				if q.Panel == e.Panel && (e.RefID == "" || e.RefID == q.RefID) {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("%s: entry %s / %s / %q names no panel query", allowlistFile, e.Dashboard, e.Panel, e.RefID)
		}
	}
	return entries
}

func allowed(entries []allowEntry, d *dashboardDoc, q query) (allowEntry, bool) {
	for _, e := range entries {
		if e.Dashboard == d.UID && e.Panel == q.Panel && (e.RefID == "" || e.RefID == q.RefID) {
			return e, true
		}
	}
	return allowEntry{}, false
}

// variableChoices resolves a dashboard's variables as Grafana does, against
// the live API: label_values() through /api/v1/label/<name>/values, All as
// its allValue, hidden derived variables as their first value. A visible
// single-value variable (the Server dashboard's server) yields one choice
// per value, since a user may pick any of them. A variable without values
// is reported and gives no choice at all.
func variableChoices(ctx context.Context, t *testing.T, c *promClient, d *dashboardDoc) []map[string]string {
	t.Helper()
	choices := []map[string]string{{}}
	for _, v := range d.Templating.List {
		var next []map[string]string
		for _, values := range choices {
			if v.Type == "datasource" {
				values[v.Name] = "prometheus"
				next = append(next, values)
				continue
			}
			q, err := substitute(v.query(), values)
			if err != nil {
				t.Fatalf("%s variable %s: %v", d.File, v.Name, err)
			}
			selector, label, ok := labelValues(q)
			if !ok {
				t.Fatalf("%s variable %s: query %q is not label_values()", d.File, v.Name, q)
			}
			options, err := c.labelValues(ctx, selector, label)
			if err != nil {
				t.Fatalf("%s variable %s: %v", d.File, v.Name, err)
			}
			if len(options) == 0 {
				t.Errorf("%s variable %s: %s has no values, the dashboard would be empty", d.File, v.Name, q)
				return nil
			}
			switch {
			case v.IncludeAll:
				values[v.Name] = v.AllValue
				next = append(next, values)
			case v.Hide == 2:
				values[v.Name] = options[0]
				next = append(next, values)
			default:
				for _, o := range options {
					branch := map[string]string{}
					for k, val := range values {
						branch[k] = val
					}
					branch[v.Name] = o
					next = append(next, branch)
				}
			}
		}
		choices = next
	}
	return choices
}

func runQuery(ctx context.Context, c *promClient, q query, values map[string]string) (int, error) {
	expr, err := substitute(q.Expr, values)
	if err != nil {
		return 0, err
	}
	if q.Range {
		return c.rangeQuery(ctx, expr, 10*time.Minute, 15*time.Second)
	}
	n, _, err := c.instant(ctx, expr)
	return n, err
}

// checkPanelsReturnData runs every panel query of every dashboard until each
// returns data or the deadline passes (recording rules over 5-minute rates
// need a few evaluations before they answer). Queries that error fail at
// once; allow-listed ones may stay empty.
func checkPanelsReturnData(t *testing.T, c *promClient, deadline time.Time) {
	ctx := context.Background()
	dashboards := loadDashboards(t)
	entries := loadAllowlist(t, dashboards)

	type pending struct {
		d       *dashboardDoc
		q       query
		choices []map[string]string
	}
	hasData := func(p pending) bool {
		for _, values := range p.choices {
			n, err := runQuery(ctx, c, p.q, values)
			if err != nil {
				t.Errorf("%s: query failed: %v", p.q, err)
				return true // reported; not retried
			}
			if n > 0 {
				return true
			}
		}
		return false
	}
	var todo, conditional []pending
	for _, d := range dashboards {
		choices := variableChoices(ctx, t, c, d)
		if len(choices) == 0 {
			continue // reported by variableChoices
		}
		for _, q := range d.queries() {
			if strings.HasPrefix(q.Panel, "variable ") {
				continue // resolved above
			}
			if _, ok := allowed(entries, d, q); ok {
				conditional = append(conditional, pending{d: d, q: q, choices: choices})
				continue
			}
			todo = append(todo, pending{d: d, q: q, choices: choices})
		}
	}
	total := len(todo)
	for {
		var still []pending
		for _, p := range todo {
			if !hasData(p) {
				still = append(still, p)
			}
		}
		todo = still
		if len(todo) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	for _, p := range todo {
		expr, _ := substitute(p.q.Expr, p.choices[0])
		t.Errorf("no data: %s\n  %s", p.q, expr)
	}
	for _, p := range conditional {
		e, _ := allowed(entries, p.d, p.q)
		if hasData(p) {
			t.Logf("data (its condition holds: %s): %s", e.Reason, p.q)
		} else {
			t.Logf("no data, allowed (%s): %s", e.Reason, p.q)
		}
	}
	t.Logf("%d panel queries must show data: %d do, %d do not; %d allow-listed as conditional", total, total-len(todo), len(todo), len(conditional))
}

// metricFamilies fetches a /metrics page and returns its sample names
// (histograms and summaries as the series Prometheus stores).
func metricFamilies(t *testing.T, url string) map[string]bool {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	names := map[string]bool{}
	for name, mf := range families {
		switch mf.GetType().String() {
		case "HISTOGRAM", "GAUGE_HISTOGRAM":
			names[name+"_bucket"] = true
			names[name+"_sum"] = true
			names[name+"_count"] = true
		case "SUMMARY":
			names[name] = true
			names[name+"_sum"] = true
			names[name+"_count"] = true
		default:
			names[name] = true
		}
	}
	return names
}

// checkMetricNames fails for every metric a dashboard selects that none of
// the real sources produces.
func checkMetricNames(t *testing.T, sources map[string]map[string]bool) {
	used := usedMetricNames(t)
	var names []string
	for name := range used {
		names = append(names, name)
	}
	sort.Strings(names)
	missing := 0
	for _, name := range names {
		var from []string
		for source, produced := range sources {
			if produced[name] {
				from = append(from, source)
			}
		}
		if len(from) == 0 {
			missing++
			t.Errorf("%s is produced by none of %s; used by %s", name, sourceNames(sources), describeUses(used[name]))
		}
	}
	t.Logf("%d metric names used by the dashboards, %d produced by none of %s", len(names), missing, sourceNames(sources))
}

func sourceNames(sources map[string]map[string]bool) string {
	var s []string
	for name, names := range sources {
		s = append(s, fmt.Sprintf("%s (%d names)", name, len(names)))
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// ruleSource is the names the rules produce: recorded series, and ALERTS
// (written by the rule evaluator for alerting rules).
func ruleSource(t *testing.T) map[string]bool {
	records, alerts := ruleNames(t)
	names := map[string]bool{}
	for r := range records {
		names[r] = true
	}
	if len(alerts) > 0 {
		names["ALERTS"] = true
		names["ALERTS_FOR_STATE"] = true
	}
	return names
}

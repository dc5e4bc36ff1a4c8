package dashboards

import (
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/berth-dev/berth/rules"
)

func TestDashboardsAreValid(t *testing.T) {
	uids := map[string]string{}
	titles := map[string]string{}
	for _, d := range loadDashboards(t) {
		t.Run(d.File, func(t *testing.T) {
			if d.SchemaVersion != SchemaVersion {
				t.Errorf("schemaVersion %d, want %d (Grafana 10.4/11)", d.SchemaVersion, SchemaVersion)
			}
			if d.UID == "" || d.UID+".json" != d.File {
				t.Errorf("uid %q does not match the file name", d.UID)
			}
			if other, dup := uids[d.UID]; dup {
				t.Errorf("uid %q also used by %s", d.UID, other)
			}
			uids[d.UID] = d.File
			if other, dup := titles[d.Title]; dup || d.Title == "" {
				t.Errorf("title %q empty or also used by %s", d.Title, other)
			}
			titles[d.Title] = d.File

			ds, ok := d.variable("datasource")
			if !ok || ds.Type != "datasource" || ds.query() != "prometheus" {
				t.Errorf("no ${datasource} Prometheus datasource variable: %+v", ds)
			}
			for _, v := range d.Templating.List {
				if v.Type == "query" && v.Multi && v.AllValue != ".*" {
					t.Errorf("variable %s: multi-value variables must use allValue .* so that empty labels match, got %q", v.Name, v.AllValue)
				}
			}

			ids := map[int]string{}
			for _, p := range d.allPanels() {
				if p.ID <= 0 {
					t.Errorf("panel %q: id %d", p.Title, p.ID)
				}
				if other, dup := ids[p.ID]; dup {
					t.Errorf("panel %q: id %d also used by %q", p.Title, p.ID, other)
				}
				ids[p.ID] = p.Title
				checkPanel(t, p)
			}
			checkLayout(t, d.Panels)
		})
	}
}

func checkPanel(t *testing.T, p *panelDoc) {
	t.Helper()
	if p.Title == "" {
		t.Errorf("panel %d has no title", p.ID)
	}
	if p.Type == "row" {
		return
	}
	if strings.TrimSpace(p.Description) == "" {
		t.Errorf("panel %q: no description", p.Title)
	}
	if p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
		t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
	}
	if p.Type != "table" && (p.FieldConfig == nil || p.FieldConfig.Defaults.Unit == "") {
		t.Errorf("panel %q: no unit", p.Title)
	}
	if len(p.Targets) == 0 {
		t.Errorf("panel %q: no query", p.Title)
	}
	refs := map[string]bool{}
	for _, tg := range p.Targets {
		if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q target %s: datasource %+v, want the ${datasource} variable", p.Title, tg.RefID, tg.Datasource)
		}
		if tg.RefID == "" || refs[tg.RefID] {
			t.Errorf("panel %q: empty or duplicate refId %q", p.Title, tg.RefID)
		}
		refs[tg.RefID] = true
		if strings.TrimSpace(tg.Expr) == "" {
			t.Errorf("panel %q target %s: empty expression", p.Title, tg.RefID)
		}
	}
}

// checkLayout finds panels outside the 24-column grid or on top of each
// other (Grafana would push them around on load).
func checkLayout(t *testing.T, panels []*panelDoc) {
	t.Helper()
	for i, a := range panels {
		g := a.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the grid", a.Title, g)
		}
		for _, b := range panels[i+1:] {
			h := b.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("panels %q and %q overlap", a.Title, b.Title)
			}
		}
	}
}

func TestQueriesParse(t *testing.T) {
	n := 0
	for _, d := range loadDashboards(t) {
		values := staticValues(d)
		for _, q := range d.queries() {
			n++
			expr, err := substitute(q.Expr, values)
			if err != nil {
				t.Errorf("%s: %v", q, err)
				continue
			}
			if strings.Contains(expr, "$") {
				t.Errorf("%s: template variable left after substitution: %s", q, expr)
				continue
			}
			if _, err := promqlParser.ParseExpr(expr); err != nil {
				t.Errorf("%s: %v\n%s", q, err, expr)
			}
		}
	}
	if n < 50 {
		t.Errorf("only %d queries found: the dashboards were not read", n)
	}
}

// ruleNames reads the recording and alerting rule names of rules/*.rules.yml,
// the files berth-placement embeds and users load into Prometheus.
func ruleNames(t *testing.T) (records, alerts map[string]bool) {
	t.Helper()
	files, err := fs.Glob(rules.Files, "*.rules.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files in package rules (%v)", err)
	}
	records, alerts = map[string]bool{}, map[string]bool{}
	for _, f := range files {
		raw, err := fs.ReadFile(rules.Files, f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Groups []struct {
				Rules []struct {
					Record string `yaml:"record"`
					Alert  string `yaml:"alert"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("rules/%s: %v", f, err)
		}
		for _, g := range doc.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					records[r.Record] = true
				}
				if r.Alert != "" {
					alerts[r.Alert] = true
				}
			}
		}
	}
	return records, alerts
}

var alertNameRE = regexp.MustCompile(`\bBerth[A-Z][A-Za-z0-9]+\b`)

// TestAlertsNamedExist keeps descriptions and ALERTS selectors in step with
// the alerting rules: a renamed alert must not leave a dashboard pointing
// at nothing.
func TestAlertsNamedExist(t *testing.T) {
	_, alerts := ruleNames(t)
	for _, d := range loadDashboards(t) {
		for _, p := range d.allPanels() {
			for _, name := range alertNameRE.FindAllString(p.Description, -1) {
				if !alerts[name] {
					t.Errorf("%s / %s: description names alert %s, which rules/ does not define", d.File, p.Title, name)
				}
			}
		}
		for _, q := range d.queries() {
			expr, err := substitute(q.Expr, staticValues(d))
			if err != nil {
				continue // reported by TestQueriesParse
			}
			for _, m := range regexp.MustCompile(`alertname\s*=\s*"([^"]+)"`).FindAllStringSubmatch(expr, -1) {
				if !alerts[m[1]] {
					t.Errorf("%s: selects alert %s, which rules/ does not define", q, m[1])
				}
			}
		}
	}
}

// usedMetricNames maps every metric name the dashboards select to the
// queries that use it.
func usedMetricNames(t *testing.T) map[string][]query {
	t.Helper()
	used := map[string][]query{}
	for _, d := range loadDashboards(t) {
		values := staticValues(d)
		for _, q := range d.queries() {
			expr, err := substitute(q.Expr, values)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			parsed, err := promqlParser.ParseExpr(expr)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			for _, name := range metricNames(parsed) {
				used[name] = append(used[name], q)
			}
		}
	}
	return used
}

func describeUses(qs []query) string {
	var parts []string
	for _, q := range qs {
		parts = append(parts, fmt.Sprint(q))
	}
	if len(parts) > 3 {
		parts = append(parts[:3], fmt.Sprintf("and %d more", len(parts)-3))
	}
	return strings.Join(parts, "; ")
}

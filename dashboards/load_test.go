package dashboards

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// The test reads the committed JSON through its own minimal view of
// Grafana's model, independent of the generator's types, so it checks what
// users import.

type dashboardDoc struct {
	File          string
	UID           string      `json:"uid"`
	Title         string      `json:"title"`
	SchemaVersion int         `json:"schemaVersion"`
	Panels        []*panelDoc `json:"panels"`
	Templating    struct {
		List []variableDoc `json:"list"`
	} `json:"templating"`
}

type panelDoc struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Datasource  *dsDoc      `json:"datasource"`
	GridPos     gridPos     `json:"gridPos"`
	Panels      []*panelDoc `json:"panels"`
	Targets     []targetDoc `json:"targets"`
	FieldConfig *struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

type dsDoc struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type targetDoc struct {
	Datasource *dsDoc `json:"datasource"`
	Expr       string `json:"expr"`
	RefID      string `json:"refId"`
	Instant    bool   `json:"instant"`
	Range      bool   `json:"range"`
}

type variableDoc struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
	Hide       int             `json:"hide"`
}

// query is the variable's query text: a string for datasource variables,
// an object for Prometheus query variables.
func (v variableDoc) query() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var q struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(v.Query, &q)
	return q.Query
}

// query is one PromQL expression of a dashboard with where it comes from.
type query struct {
	Dashboard string // file name
	Panel     string // panel title, or "variable <name>"
	RefID     string
	Expr      string // as written, with template variables
	Range     bool   // drawn over time (query_range) rather than at one instant
}

func (q query) String() string {
	return fmt.Sprintf("%s / %s / %s", q.Dashboard, q.Panel, q.RefID)
}

func loadDashboards(t *testing.T) []*dashboardDoc {
	t.Helper()
	files, err := fs.Glob(Files, "*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no dashboard JSON embedded")
	}
	sort.Strings(files)
	var out []*dashboardDoc
	for _, f := range files {
		raw, err := fs.ReadFile(Files, f)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(raw) {
			t.Fatalf("%s: not valid JSON", f)
		}
		d := &dashboardDoc{File: f}
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		if err := dec.Decode(d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, d)
	}
	return out
}

// allPanels flattens rows (collapsed rows hold their panels inside).
func (d *dashboardDoc) allPanels() []*panelDoc {
	var out []*panelDoc
	var walk func([]*panelDoc)
	walk = func(ps []*panelDoc) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func (d *dashboardDoc) variable(name string) (variableDoc, bool) {
	for _, v := range d.Templating.List {
		if v.Name == name {
			return v, true
		}
	}
	return variableDoc{}, false
}

// queries lists every PromQL expression: panel targets and the selectors of
// label_values() variables.
func (d *dashboardDoc) queries() []query {
	var out []query
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		if sel, _, ok := labelValues(v.query()); ok && sel != "" {
			out = append(out, query{Dashboard: d.File, Panel: "variable " + v.Name, RefID: "query", Expr: sel})
		}
	}
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			out = append(out, query{Dashboard: d.File, Panel: p.Title, RefID: tg.RefID, Expr: tg.Expr, Range: tg.Range && !tg.Instant})
		}
	}
	return out
}

var labelValuesRE = regexp.MustCompile(`^label_values\((?:(.*),\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// labelValues splits Grafana's label_values(selector, label).
func labelValues(q string) (selector, label string, ok bool) {
	m := labelValuesRE.FindStringSubmatch(strings.TrimSpace(q))
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// Grafana's global variables, with the values the tests give them: the
// rate interval Grafana computes for a 15 s scrape interval, and a time
// range long enough for the live test's data.
var globalVariables = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "1m",
	"__interval_ms":   "60000",
	"__range":         "1h",
	"__range_s":       "3600",
	"__range_ms":      "3600000",
}

var variableRE = regexp.MustCompile(`\$\{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?\}|\$([a-zA-Z_][a-zA-Z0-9_]*)`)

// substitute replaces template variables by values; a variable without a
// value is reported.
func substitute(expr string, values map[string]string) (string, error) {
	var missing []string
	out := variableRE.ReplaceAllStringFunc(expr, func(m string) string {
		sub := variableRE.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		if v, ok := values[name]; ok {
			return v
		}
		if v, ok := globalVariables[name]; ok {
			return v
		}
		missing = append(missing, name)
		return m
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("undefined template variables %v", missing)
	}
	return out, nil
}

// staticValues gives every variable of d a value that keeps a query valid
// PromQL: All (.*) for multi-value variables, a plain name otherwise.
func staticValues(d *dashboardDoc) map[string]string {
	values := map[string]string{}
	for _, v := range d.Templating.List {
		switch {
		case v.Type == "datasource":
			values[v.Name] = "prometheus"
		case v.IncludeAll:
			values[v.Name] = v.AllValue
		default:
			values[v.Name] = "example"
		}
	}
	return values
}

var promqlParser = parser.NewParser(parser.Options{})

// metricNames returns the metric names an expression selects.
func metricNames(expr parser.Expr) []string {
	var names []string
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if vs.Name != "" {
			names = append(names, vs.Name)
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == "__name__" {
				names = append(names, m.Value)
			}
		}
		return nil
	})
	return names
}

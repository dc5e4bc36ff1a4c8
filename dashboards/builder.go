package dashboards

import "fmt"

// promDS is the datasource every panel and target uses: the dashboard's
// ${datasource} variable, so one import works against any Prometheus-API
// backend (Prometheus, berth-placement's embedded /prometheus, Thanos…).
var promDS = datasource{Type: "prometheus", UID: "${datasource}"}

// Grafana lays panels out on a 24-column grid.
const gridWidth = 24

// board builds one dashboard: it numbers panels and places them left to
// right, wrapping to a new line when the grid is full.
type board struct {
	d      *dashboard
	nextID int
	x, y   int
	lineH  int
}

func newBoard(uid, title, description string) *board {
	return &board{d: &dashboard{
		Annotations: annotations{List: []annotation{{
			BuiltIn:    1,
			Datasource: datasource{Type: "grafana", UID: "-- Grafana --"},
			Enable:     true,
			Hide:       true,
			IconColor:  "rgba(0, 211, 255, 1)",
			Name:       "Annotations & Alerts",
			Type:       "dashboard",
		}}},
		Description:  description,
		Editable:     true,
		GraphTooltip: 1, // shared crosshair
		Links: []link{{
			AsDropdown:  true,
			Icon:        "external link",
			IncludeVars: false,
			KeepTime:    true,
			Tags:        []string{"berth"},
			Title:       "Berth dashboards",
			Type:        "dashboards",
		}},
		Refresh:       "30s",
		SchemaVersion: SchemaVersion,
		Tags:          []string{"berth"},
		Templating:    templating{List: []variable{datasourceVariable()}},
		Time:          timeRange{From: "now-6h", To: "now"},
		Title:         title,
		UID:           uid,
		Version:       1,
	}}
}

// vars appends template variables after ${datasource}.
func (b *board) vars(vs ...variable) *board {
	b.d.Templating.List = append(b.d.Templating.List, vs...)
	return b
}

// row starts a new (expanded) row.
func (b *board) row(title string) {
	b.newline()
	b.nextID++
	collapsed := false
	b.d.Panels = append(b.d.Panels, &panel{
		Collapsed: &collapsed,
		GridPos:   gridPos{H: 1, W: gridWidth, X: 0, Y: b.y},
		ID:        b.nextID,
		Title:     title,
		Type:      "row",
	})
	b.y++
}

// add places p with width w and height h.
func (b *board) add(w, h int, p *panel) {
	if w > gridWidth {
		panic(fmt.Sprintf("panel %q wider than the grid", p.Title))
	}
	if b.x+w > gridWidth {
		b.newline()
	}
	b.nextID++
	p.ID = b.nextID
	p.GridPos = gridPos{H: h, W: w, X: b.x, Y: b.y}
	b.x += w
	if h > b.lineH {
		b.lineH = h
	}
	b.d.Panels = append(b.d.Panels, p)
}

func (b *board) newline() {
	if b.x > 0 {
		b.y += b.lineH
	}
	b.x, b.lineH = 0, 0
}

func datasourceVariable() variable {
	return variable{
		Current:     map[string]any{},
		Description: "Prometheus-API datasource holding Berth's metrics and recording rules (a Prometheus loaded with rules/, or berth-placement's embedded /prometheus endpoint).",
		Label:       "Data source",
		Name:        "datasource",
		Options:     []any{},
		Query:       "prometheus",
		Type:        "datasource",
	}
}

// queryVariable is a label_values() variable. multi variables include
// "All" as the regex .* so that series with an empty label (servers
// without an organization) still match.
func queryVariable(name, label, query, description string, multi bool) variable {
	v := variable{
		Current:     map[string]any{},
		Datasource:  &promDS,
		Definition:  query,
		Description: description,
		Label:       label,
		Multi:       multi,
		IncludeAll:  multi,
		Name:        name,
		Options:     []any{},
		Query: map[string]any{
			"qryType": 1,
			"query":   query,
			"refId":   "PrometheusVariableQueryEditor-VariableQuery",
		},
		Refresh: 2, // on time range change
		Sort:    1, // alphabetical
		Type:    "query",
	}
	if multi {
		v.AllValue = ".*"
		v.Current = map[string]any{"selected": true, "text": []string{"All"}, "value": []string{"$__all"}}
	}
	return v
}

// hiddenVariable is a single-valued query variable the user never sees,
// derived from another one (e.g. the scrape instance of a server).
func hiddenVariable(name, query, description string) variable {
	v := queryVariable(name, name, query, description, false)
	v.Hide = 2
	return v
}

// Targets.

// series is a range query drawn as a time series.
func series(expr, legend string) target {
	return target{Datasource: promDS, EditorMode: "code", Expr: expr, LegendFormat: legend, Range: true}
}

// instant is an instant query (stat, gauge, bar gauge).
func instant(expr, legend string) target {
	return target{Datasource: promDS, EditorMode: "code", Expr: expr, Instant: true, LegendFormat: legend}
}

// tableQuery is an instant query returned as a table (one row per series).
func tableQuery(expr string) target {
	return target{Datasource: promDS, EditorMode: "code", Expr: expr, Format: "table", Instant: true, LegendFormat: "__auto"}
}

func withRefIDs(ts []target) []target {
	for i := range ts {
		ts[i].RefID = string(rune('A' + i))
	}
	return ts
}

// Panels.

func basePanel(kind, title, description, unit string, targets []target) *panel {
	return &panel{
		Datasource:  &promDS,
		Description: description,
		FieldConfig: &fieldConfig{
			Defaults: fieldDefaults{
				Color:      map[string]any{"mode": "palette-classic"},
				Mappings:   []any{},
				Thresholds: thresholds{Mode: "absolute", Steps: []step{{Color: "green"}}},
				Unit:       unit,
			},
			Overrides: []override{},
		},
		Targets: withRefIDs(targets),
		Title:   title,
		Type:    kind,
	}
}

func timeseries(title, description, unit string, targets ...target) *panel {
	p := basePanel("timeseries", title, description, unit, targets)
	p.FieldConfig.Defaults.Custom = map[string]any{
		"drawStyle":         "line",
		"lineWidth":         1,
		"fillOpacity":       10,
		"gradientMode":      "none",
		"showPoints":        "never",
		"spanNulls":         false,
		"axisPlacement":     "auto",
		"stacking":          map[string]any{"group": "A", "mode": "none"},
		"thresholdsStyle":   map[string]any{"mode": "off"},
		"axisSoftMin":       0,
		"lineInterpolation": "linear",
	}
	p.Options = map[string]any{
		"legend":  map[string]any{"calcs": []string{"lastNotNull", "max"}, "displayMode": "table", "placement": "bottom", "showLegend": true},
		"tooltip": map[string]any{"mode": "multi", "sort": "desc"},
	}
	return p
}

func stat(title, description, unit string, targets ...target) *panel {
	p := basePanel("stat", title, description, unit, targets)
	p.FieldConfig.Defaults.Color = map[string]any{"mode": "thresholds"}
	p.Options = map[string]any{
		"colorMode":   "value",
		"graphMode":   "none",
		"justifyMode": "auto",
		"orientation": "auto",
		"reduceOptions": map[string]any{
			"calcs": []string{"lastNotNull"}, "fields": "", "values": false,
		},
		"textMode": "auto",
	}
	return p
}

func bargauge(title, description, unit string, targets ...target) *panel {
	p := basePanel("bargauge", title, description, unit, targets)
	p.FieldConfig.Defaults.Color = map[string]any{"mode": "thresholds"}
	p.Options = map[string]any{
		"displayMode":   "gradient",
		"orientation":   "horizontal",
		"showUnfilled":  true,
		"minVizHeight":  10,
		"minVizWidth":   0,
		"valueMode":     "color",
		"namePlacement": "auto",
		"sizing":        "auto",
		"reduceOptions": map[string]any{
			"calcs": []string{"lastNotNull"}, "fields": "", "values": false,
		},
	}
	return p
}

// table shows instant table queries merged into one row per label set;
// columns names the value column of each query (Value #A, Value #B…).
func table(title, description string, columns []column, targets ...target) *panel {
	p := basePanel("table", title, description, "", targets)
	p.FieldConfig.Defaults.Color = map[string]any{"mode": "thresholds"}
	p.FieldConfig.Defaults.Custom = map[string]any{
		"align": "auto", "cellOptions": map[string]any{"type": "auto"}, "inspect": false,
		"filterable": true,
	}
	p.Options = map[string]any{
		"cellHeight": "sm",
		"showHeader": true,
		"footer":     map[string]any{"countRows": false, "fields": "", "reducer": []string{"sum"}, "show": false},
	}
	rename := map[string]any{}
	for i, c := range columns {
		field := "Value"
		if len(targets) > 1 {
			field = fmt.Sprintf("Value #%c", 'A'+i)
		}
		rename[field] = c.title
		props := []property{{ID: "unit", Value: c.unit}}
		if c.thresholds != nil {
			props = append(props,
				property{ID: "thresholds", Value: *c.thresholds},
				property{ID: "custom.cellOptions", Value: map[string]any{"type": "color-background", "mode": "basic"}},
			)
		}
		if c.max != nil {
			props = append(props, property{ID: "max", Value: *c.max}, property{ID: "min", Value: 0})
		}
		p.FieldConfig.Overrides = append(p.FieldConfig.Overrides, override{
			Matcher:    matcher{ID: "byName", Options: field},
			Properties: props,
		})
	}
	if len(targets) > 1 {
		p.Transformations = append(p.Transformations, transformation{ID: "merge", Options: map[string]any{}})
	}
	p.Transformations = append(p.Transformations, transformation{ID: "organize", Options: map[string]any{
		"excludeByName": map[string]any{"Time": true, "__name__": true, "job": true, "instance": true},
		"renameByName":  rename,
	}})
	if len(columns) > 0 && columns[0].sortDesc != nil {
		p.Options["sortBy"] = []map[string]any{{"displayName": columns[0].title, "desc": *columns[0].sortDesc}}
	}
	return p
}

// column describes the value column of one table query.
type column struct {
	title      string
	unit       string
	thresholds *thresholds
	max        *float64
	sortDesc   *bool // sort the table by this (first) column
}

// Panel options.

func (p *panel) minMax(min, max float64) *panel {
	p.FieldConfig.Defaults.Min = &min
	p.FieldConfig.Defaults.Max = &max
	return p
}

func (p *panel) min0() *panel {
	min := 0.0
	p.FieldConfig.Defaults.Min = &min
	return p
}

// steps sets thresholds: green below the first value, then each color.
func (p *panel) steps(s ...step) *panel {
	p.FieldConfig.Defaults.Thresholds = thresholds{Mode: "absolute", Steps: append([]step{{Color: "green"}}, s...)}
	return p
}

// colors sets thresholds starting from base below the first step.
func (p *panel) colors(base string, s ...step) *panel {
	p.FieldConfig.Defaults.Thresholds = thresholds{Mode: "absolute", Steps: append([]step{{Color: base}}, s...)}
	return p
}

// baseColor changes the color of the lowest threshold step.
func (p *panel) baseColor(color string) *panel {
	p.FieldConfig.Defaults.Thresholds.Steps[0].Color = color
	return p
}

// thresholdLines draws the thresholds as dashed lines on a time series.
func (p *panel) thresholdLines() *panel {
	p.FieldConfig.Defaults.Custom["thresholdsStyle"] = map[string]any{"mode": "dashed"}
	return p
}

func (p *panel) stacked() *panel {
	p.FieldConfig.Defaults.Custom["stacking"] = map[string]any{"group": "A", "mode": "normal"}
	p.FieldConfig.Defaults.Custom["fillOpacity"] = 30
	return p
}

func (p *panel) decimals(n int) *panel {
	p.FieldConfig.Defaults.Decimals = &n
	return p
}

func (p *panel) noValue(text string) *panel {
	p.FieldConfig.Defaults.NoValue = text
	return p
}

// dashedSeries draws the series whose name matches regex as a dashed red
// line without fill: limits, capacities and thresholds next to usage.
func (p *panel) dashedSeries(regex string) *panel {
	p.FieldConfig.Overrides = append(p.FieldConfig.Overrides, override{
		Matcher: matcher{ID: "byRegexp", Options: regex},
		Properties: []property{
			{ID: "custom.lineStyle", Value: map[string]any{"dash": []int{10, 10}, "fill": "dash"}},
			{ID: "custom.fillOpacity", Value: 0},
			{ID: "custom.stacking", Value: map[string]any{"group": "A", "mode": "none"}},
			{ID: "color", Value: map[string]any{"fixedColor": "red", "mode": "fixed"}},
		},
	})
	return p
}

// valueText maps exact values to text and color (e.g. 1 → "up", green).
func (p *panel) valueText(mappings ...valueMapping) *panel {
	options := map[string]any{}
	for i, m := range mappings {
		options[m.value] = map[string]any{"text": m.text, "color": m.color, "index": i}
	}
	p.FieldConfig.Defaults.Mappings = append(p.FieldConfig.Defaults.Mappings, map[string]any{"type": "value", "options": options})
	return p
}

type valueMapping struct{ value, text, color string }

// textName shows the series name (legend) instead of its value: for info
// metrics such as the kernel release.
func (p *panel) textName() *panel {
	p.Options["textMode"] = "name"
	p.FieldConfig.Defaults.Color = map[string]any{"mode": "fixed", "fixedColor": "text"}
	return p
}

func (p *panel) graph() *panel {
	p.Options["graphMode"] = "area"
	return p
}

func at(v float64, color string) step { return step{Color: color, Value: &v} }

func ptr[T any](v T) *T { return &v }

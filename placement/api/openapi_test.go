package api

import (
	"github.com/berth-dev/berth/placement/build"
	"github.com/berth-dev/berth/placement/quota"

	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/placement"
)

// openAPIDoc is the served document, decoded.
func openAPIDoc(t *testing.T) map[string]any {
	t.Helper()
	b, err := OpenAPIDocument()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestOpenAPIMatchesRoutes: every route registered under /api/v1 is in the
// document with its method, and every documented operation is registered
// (under /api/v1, or at the root for a path item whose servers say "/",
// as /-/reload).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newTestEnv(t)
	doc := openAPIDoc(t)
	if doc["openapi"] != "3.0.3" {
		t.Errorf("openapi version %v", doc["openapi"])
	}
	registered, atRoot := map[string]bool{}, map[string]bool{}
	for _, r := range e.api.echo.Routes() {
		if strings.HasSuffix(r.Path, "/*") {
			continue
		}
		if !strings.HasPrefix(r.Path, Prefix+"/") {
			atRoot[strings.ToLower(r.Method)+" "+r.Path] = true
			continue
		}
		registered[strings.ToLower(r.Method)+" "+openAPIPath(strings.TrimPrefix(r.Path, Prefix))] = true
	}
	documented := map[string]bool{}
	param := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range doc["paths"].(map[string]any) {
		item := item.(map[string]any)
		if servers := asSlice(item["servers"]); len(servers) > 0 {
			if len(servers) != 1 || servers[0].(map[string]any)["url"] != "/" {
				t.Errorf("%s: servers %v, want the root (/)", path, servers)
			}
			for method := range item {
				if method != "servers" && !atRoot[method+" "+path] {
					t.Errorf("openapi.yaml documents %s %s at the root, which is not registered", method, path)
				}
			}
			continue
		}
		for method, op := range item {
			key := method + " " + path
			documented[key] = true
			// Every path parameter is declared.
			var declared []string
			for _, p := range asSlice(op.(map[string]any)["parameters"]) {
				p := resolve(t, doc, p.(map[string]any))
				if p["in"] == "path" {
					declared = append(declared, p["name"].(string))
				}
			}
			for _, m := range param.FindAllStringSubmatch(path, -1) {
				if !slices.Contains(declared, m[1]) {
					t.Errorf("%s: path parameter %s not declared", key, m[1])
				}
			}
			if op.(map[string]any)["responses"].(map[string]any)["200"] == nil {
				t.Errorf("%s: no 200 response documented", key)
			}
		}
	}
	for k := range registered {
		if !documented[k] {
			t.Errorf("route %s is registered but not in openapi.yaml", k)
		}
	}
	for k := range documented {
		if !registered[k] {
			t.Errorf("openapi.yaml documents %s, which is not registered", k)
		}
	}
	if len(registered) != len(e.api.routes) {
		t.Errorf("%d routes registered, %d in apiRoutes", len(registered), len(e.api.routes))
	}

	// Every $ref resolves.
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				resolve(t, doc, v)
				_ = ref
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)

	// The served document is this one.
	var served map[string]any
	e.json("GET", "/api/v1/openapi.json", "", 200, &served)
	if !reflect.DeepEqual(served, doc) {
		t.Error("GET /api/v1/openapi.json differs from OpenAPIDocument()")
	}
}

// TestOpenAPISchemasMatchTypes: each schema has exactly the JSON fields of
// the Go type the handlers encode or decode.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	schemas := openAPIDoc(t)["components"].(map[string]any)["schemas"].(map[string]any)
	types := map[string]reflect.Type{
		"Error":             reflect.TypeFor[Error](),
		"ResourcesInput":    reflect.TypeFor[placement.Resources](),
		"Resources":         reflect.TypeFor[placement.Resources](),
		"ServerList":        reflect.TypeFor[ServerList](),
		"ServerView":        reflect.TypeFor[ServerView](),
		"FreshnessView":     reflect.TypeFor[FreshnessView](),
		"CPUView":           reflect.TypeFor[CPUView](),
		"MemoryView":        reflect.TypeFor[MemoryView](),
		"DiskView":          reflect.TypeFor[DiskView](),
		"NetworkView":       reflect.TypeFor[NetworkView](),
		"ContainerView":     reflect.TypeFor[ContainerView](),
		"CheckRequest":      reflect.TypeFor[CheckRequest](),
		"CheckResponse":     reflect.TypeFor[CheckResponse](),
		"DimensionFit":      reflect.TypeFor[placement.DimensionFit](),
		"PlacementRequest":  reflect.TypeFor[PlacementRequest](),
		"PlacementResponse": reflect.TypeFor[PlacementResponse](),
		"Ranked":            reflect.TypeFor[placement.Ranked](),
		"Rejected":          reflect.TypeFor[placement.Rejected](),
		"Reservation":       reflect.TypeFor[placement.Reservation](),
		"ReservationList":   reflect.TypeFor[ReservationList](),
		// builds
		"BuildLoad":              reflect.TypeFor[build.Load](),
		"BuildServerList":        reflect.TypeFor[BuildServerList](),
		"BuildEstimateRequest":   reflect.TypeFor[BuildEstimateBody](),
		"BuildEstimate":          reflect.TypeFor[build.Estimate](),
		"EstimateAdjustment":     reflect.TypeFor[build.Adjustment](),
		"BuildPlacementRequest":  reflect.TypeFor[BuildPlacementRequest](),
		"BuildPlacementResponse": reflect.TypeFor[BuildPlacementResponse](),
		"BuildWait":              reflect.TypeFor[build.Wait](),
		"BuildTieBreak":          reflect.TypeFor[build.TieBreak](),
		"BuildStartRequest":      reflect.TypeFor[BuildStartRequest](),
		"BuildFinishResponse":    reflect.TypeFor[BuildFinishResponse](),
		// organizations
		"OrganizationList":       reflect.TypeFor[OrganizationList](),
		"QuotaStatus":            reflect.TypeFor[quota.Status](),
		"QuotaUsage":             reflect.TypeFor[quota.Usage](),
		"QuotaLimits":            reflect.TypeFor[quota.Limits](),
		"QuotaViolation":         reflect.TypeFor[quota.Violation](),
		"QuotaBreakdown":         reflect.TypeFor[quota.Breakdown](),
		"QuotaContainers":        reflect.TypeFor[quota.Containers](),
		"QuotaReserved":          reflect.TypeFor[quota.Reserved](),
		"QuotaDisk":              reflect.TypeFor[quota.Disk](),
		"DeploymentCheckRequest": reflect.TypeFor[DeploymentCheckRequest](),
		"QuotaCheck":             reflect.TypeFor[quota.Check](),
		"QuotaExceeded":          reflect.TypeFor[quota.Exceeded](),
		"ExcessServers":          reflect.TypeFor[quota.Excess](),
		// /-/reload
		"ReloadAnswer":  reflect.TypeFor[ReloadAnswer](),
		"ReloadOutcome": reflect.TypeFor[ReloadOutcome](),
	}
	for name, typ := range types {
		s, ok := schemas[name].(map[string]any)
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		var props []string
		for p := range s["properties"].(map[string]any) {
			props = append(props, p)
		}
		slices.Sort(props)
		fields := jsonFields(typ)
		slices.Sort(fields)
		if !slices.Equal(props, fields) {
			t.Errorf("schema %s has properties %v, Go type %s encodes %v", name, props, typ, fields)
		}
	}
	// Reason codes documented are the domain's.
	var reasons []string
	for _, r := range schemas["Reason"].(map[string]any)["enum"].([]any) {
		reasons = append(reasons, r.(string))
	}
	for _, r := range []placement.Reason{placement.ReasonInsufficientCPU, placement.ReasonInsufficientMemory, placement.ReasonInsufficientDisk,
		placement.ReasonDiskThreshold, placement.ReasonMetricsStale, placement.ReasonMetricsMissing, placement.ReasonServerNotFound,
		placement.ReasonWrongRole, placement.ReasonAtBuildCapacity} {
		if !slices.Contains(reasons, string(r)) {
			t.Errorf("reason %s not in the Reason schema", r)
		}
	}
}

// TestOpenAPIValidatesResponses: real answers of the handlers validate
// against the documented response schemas (no undocumented field, right
// types, enums respected).
func TestOpenAPIValidatesResponses(t *testing.T) {
	refuse := false // set for the reload that is to be refused
	e := newTestEnv(t, func(o *Options, _ *testEnv) {
		o.Reloaders = []Reloader{
			{Name: "placement policy", Code: CodeInvalidPolicy, Reload: func() error {
				if refuse {
					return &placement.FieldError{Field: "scoring.strategy", Err: errors.New("must be \"spread\" or \"pack\"")}
				}
				return nil
			}},
			{Name: "bearer tokens", Reload: func() error { return nil }},
		}
	})
	doc := openAPIDoc(t)
	var d PlacementResponse
	e.json("POST", "/api/v1/placements", `{"requirements":{"cpu":1},"reserve":true}`, 200, &d)
	id := d.Reservation.ID
	for _, c := range []struct {
		method, path, docPath, body string
		status                      int
	}{
		{"GET", "/api/v1/servers", "/servers", "", 200},
		{"GET", "/api/v1/servers/app-1", "/servers/{server}", "", 200},
		{"GET", "/api/v1/servers/app-stale", "/servers/{server}", "", 200},
		{"GET", "/api/v1/servers/nope", "/servers/{server}", "", 404},
		{"POST", "/api/v1/placements/check", "/placements/check", `{"server":"app-1","requirements":{"cpu":1}}`, 200},
		{"POST", "/api/v1/placements/check", "/placements/check", `{"server":"app-2","requirements":{"cpu":100}}`, 200},
		{"POST", "/api/v1/placements", "/placements", `{"requirements":{"cpu":"0.5","memory":"1g"},"reserve":true,"ttl":60}`, 200},
		{"POST", "/api/v1/placements", "/placements", `{"requirements":{"cpu":1000}}`, 200},
		{"POST", "/api/v1/placements", "/placements", `{"requirements":{"cpu":"x"}}`, 400},
		{"GET", "/api/v1/reservations", "/reservations", "", 200},
		{"POST", "/api/v1/reservations/" + id + "/confirm", "/reservations/{id}/confirm", "", 200},
		{"DELETE", "/api/v1/reservations/" + id, "/reservations/{id}", "", 200},
		{"POST", "/-/reload", "/-/reload", "", 200},
		{"POST", "/-/reload?refuse", "/-/reload", "", 422},
	} {
		refuse = strings.HasSuffix(c.path, "?refuse")
		status, b, _ := e.do(c.method, c.path, c.body)
		if status != c.status {
			t.Fatalf("%s %s: %d %s", c.method, c.path, status, b)
		}
		op := doc["paths"].(map[string]any)[c.docPath].(map[string]any)[strings.ToLower(c.method)].(map[string]any)
		resp, ok := op["responses"].(map[string]any)[fmt.Sprint(status)].(map[string]any)
		if !ok {
			t.Errorf("%s %s: status %d not documented", c.method, c.docPath, status)
			continue
		}
		resp = resolve(t, doc, resp)
		schema := resp["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		for _, err := range validate(t, doc, schema, v, "$") {
			t.Errorf("%s %s: %s", c.method, c.path, err)
		}
	}
}

// validate is a small JSON Schema (OpenAPI 3.0 subset) checker: type,
// nullable, properties (no undocumented ones), required, items, enum,
// oneOf, allOf, $ref.
func validate(t *testing.T, doc, schema map[string]any, v any, at string) []string {
	schema = resolve(t, doc, schema)
	if v == nil {
		if schema["nullable"] == true || schema["type"] == nil && schema["oneOf"] == nil && schema["allOf"] == nil {
			return nil
		}
		return []string{at + ": null, schema not nullable"}
	}
	var errs []string
	for _, sub := range asSlice(schema["allOf"]) {
		errs = append(errs, validate(t, doc, sub.(map[string]any), v, at)...)
	}
	if one := asSlice(schema["oneOf"]); len(one) > 0 {
		matched := 0
		for _, sub := range one {
			if len(validate(t, doc, sub.(map[string]any), v, at)) == 0 {
				matched++
			}
		}
		if matched == 0 {
			errs = append(errs, at+": matches no oneOf alternative")
		}
	}
	if enum := asSlice(schema["enum"]); len(enum) > 0 && !slices.Contains(enum, v) {
		errs = append(errs, fmt.Sprintf("%s: %v not in enum %v", at, v, enum))
	}
	typ, _ := schema["type"].(string)
	switch typ {
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			return append(errs, fmt.Sprintf("%s: %T, want object", at, v))
		}
		props, hasProps := schema["properties"].(map[string]any)
		for k, val := range obj {
			p, ok := props[k].(map[string]any)
			if !ok {
				if hasProps {
					errs = append(errs, fmt.Sprintf("%s.%s: not documented", at, k))
				}
				continue
			}
			errs = append(errs, validate(t, doc, p, val, at+"."+k)...)
		}
		for _, r := range asSlice(schema["required"]) {
			if _, ok := obj[r.(string)]; !ok {
				errs = append(errs, fmt.Sprintf("%s: required %s missing", at, r))
			}
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return append(errs, fmt.Sprintf("%s: %T, want array", at, v))
		}
		for i, item := range arr {
			errs = append(errs, validate(t, doc, schema["items"].(map[string]any), item, fmt.Sprintf("%s[%d]", at, i))...)
		}
	case "string":
		if _, ok := v.(string); !ok {
			errs = append(errs, fmt.Sprintf("%s: %T, want string", at, v))
		}
	case "number", "integer":
		n, ok := v.(float64)
		if !ok || typ == "integer" && n != math.Trunc(n) {
			errs = append(errs, fmt.Sprintf("%s: %v, want %s", at, v, typ))
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			errs = append(errs, fmt.Sprintf("%s: %T, want boolean", at, v))
		}
	}
	return errs
}

func resolve(t *testing.T, doc, m map[string]any) map[string]any {
	t.Helper()
	ref, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		next, ok := cur.(map[string]any)[part]
		if !ok {
			t.Fatalf("$ref %s does not resolve", ref)
		}
		cur = next
	}
	return resolve(t, doc, cur.(map[string]any))
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// jsonFields lists the JSON member names encoding/json uses for t,
// including fields promoted from embedded structs.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			out = append(out, jsonFields(ft)...)
			continue
		}
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

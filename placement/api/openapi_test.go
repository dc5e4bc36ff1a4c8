package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"go.yaml.in/yaml/v3"

	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/build"
	"github.com/berth-dev/berth/placement/quota"
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
	for path, item := range loadedOpenAPI(t).doc.Paths.Map() {
		if len(item.Servers) > 0 {
			if len(item.Servers) != 1 || item.Servers[0].URL != "/" {
				t.Errorf("%s: servers %v, want the root (/)", path, item.Servers)
			}
			for method := range item.Operations() {
				if !atRoot[strings.ToLower(method)+" "+path] {
					t.Errorf("openapi.yaml documents %s %s at the root, which is not registered", method, path)
				}
			}
			continue
		}
		for method, op := range item.Operations() {
			key := strings.ToLower(method) + " " + path
			documented[key] = true
			// Every path parameter is declared.
			var declared []string
			for _, p := range op.Parameters {
				if p.Value.In == openapi3.ParameterInPath {
					declared = append(declared, p.Value.Name)
				}
			}
			for _, m := range param.FindAllStringSubmatch(path, -1) {
				if !slices.Contains(declared, m[1]) {
					t.Errorf("%s: path parameter %s not declared", key, m[1])
				}
			}
			if op.Responses.Value("200") == nil {
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

	// Every $ref resolves: kin-openapi's loader refuses a document where
	// one does not (loadedOpenAPI).

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
		"Headroom":               reflect.TypeFor[placement.Resources](),
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
		// An answer's schema requires exactly what is always sent (the
		// fields without omitempty), so that generated clients need not
		// check for absent fields that never are.
		if requestSchemas[name] {
			continue
		}
		var required []string
		listed, _ := s["required"].([]any)
		for _, r := range listed {
			required = append(required, r.(string))
		}
		slices.Sort(required)
		always := alwaysSent(typ)
		slices.Sort(always)
		if !slices.Equal(required, always) {
			t.Errorf("schema %s requires %v, Go type %s always sends %v", name, required, typ, always)
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
// types, enums respected), with kin-openapi as every answer the tests
// receive (checkAnswers).
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
		checkSchema(t, c.method, c.docPath, status, b)
	}
}

// requestSchemas are the schemas of request bodies: what they require is
// what the handlers refuse without.
var requestSchemas = map[string]bool{
	"ResourcesInput": true, "CheckRequest": true, "PlacementRequest": true, "DeploymentCheckRequest": true,
	"BuildEstimateRequest": true, "BuildPlacementRequest": true, "BuildStartRequest": true,
}

// jsonFields lists the JSON member names encoding/json uses for t,
// including fields promoted from embedded structs.
func jsonFields(t reflect.Type) []string { return jsonMembers(t, false) }

// alwaysSent lists those of t's JSON members encoding/json always writes:
// the fields without omitempty or omitzero.
func alwaysSent(t reflect.Type) []string { return jsonMembers(t, true) }

func jsonMembers(t reflect.Type, alwaysOnly bool) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			out = append(out, jsonMembers(ft, alwaysOnly)...)
			continue
		}
		if !f.IsExported() || name == "-" {
			continue
		}
		if omits := strings.Split(opts, ","); alwaysOnly && (slices.Contains(omits, "omitempty") || slices.Contains(omits, "omitzero")) {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

// TestOpenAPIDocumentValidates: the served document passes kin-openapi's
// validation of OpenAPI 3.0 documents: known fields only (no stray keys
// such as "allocated)": null), resolvable $refs, declared path parameters,
// known formats, and examples and defaults valid against their schemas.
func TestOpenAPIDocumentValidates(t *testing.T) {
	spec := loadedOpenAPI(t)
	if got := spec.doc.OpenAPI; got != "3.0.3" {
		t.Errorf("openapi %q", got)
	}
	// Every operation declares the JSON error shape for any other status.
	for path, item := range spec.doc.Paths.Map() {
		for method, op := range item.Operations() {
			if d := op.Responses.Default(); d == nil || d.Value.Content.Get("application/json") == nil {
				t.Errorf("%s %s: no default error response", method, path)
			}
		}
	}
}

// TestOpenAPIYAMLStyle: every description is a block scalar, never in a
// flow mapping {…}, where an unquoted ", " ends the value and starts a new
// key; and no flow mapping has a key without a value, the mark of that trap
// whatever the key.
func TestOpenAPIYAMLStyle(t *testing.T) {
	for _, p := range yamlStyleProblems(t, openAPIYAML) {
		t.Errorf("openapi.yaml: %s", p)
	}
	// The checker sees the trap the document once fell into.
	trap := []byte("a:\n  \"200\": {description: The fleet, sorted by server name., content: {}}\n  b:\n    description: plain\n")
	if got := yamlStyleProblems(t, trap); len(got) != 3 {
		t.Errorf("the comma trap gives %d problems, want 3 (description in a flow mapping, a key without value, a plain description): %q", len(got), got)
	}
}

func yamlStyleProblems(t *testing.T, src []byte) []string {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		t.Fatal(err)
	}
	var problems []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			flow := n.Style&yaml.FlowStyle != 0
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				switch {
				case k.Value == "description" && v.Kind == yaml.ScalarNode && flow:
					problems = append(problems, fmt.Sprintf("line %d: description in a flow mapping", k.Line))
				case k.Value == "description" && v.Kind == yaml.ScalarNode && v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0:
					problems = append(problems, fmt.Sprintf("line %d: description is not a block scalar (description: >- and the text on the next lines)", k.Line))
				}
				if flow && v.Tag == "!!null" && v.Value == "" {
					problems = append(problems, fmt.Sprintf("line %d: key %q has no value (a comma inside a flow mapping?)", k.Line, k.Value))
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&root)
	return problems
}

// openAPISpec is the served document as kin-openapi loads it.
type openAPISpec struct {
	// doc is the document as served, validated.
	doc *openapi3.T
	// strict is another copy in which every object schema that lists its
	// properties allows no other: answers are checked against it, so an
	// undocumented field fails a test, while the served document leaves
	// clients free to ignore fields added later.
	strict *openapi3.T
	router routers.Router // over strict
}

var openAPISpecOnce = sync.OnceValues(func() (*openAPISpec, error) {
	b, err := OpenAPIDocument()
	if err != nil {
		return nil, err
	}
	load := func() (*openapi3.T, error) {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(b)
		if err != nil {
			return nil, fmt.Errorf("loading the OpenAPI document: %w", err)
		}
		if err := doc.Validate(loader.Context, openapi3.EnableSchemaFormatValidation(), openapi3.EnableMultiError()); err != nil {
			return nil, fmt.Errorf("the OpenAPI document is not valid: %w", err)
		}
		return doc, nil
	}
	spec := &openAPISpec{}
	if spec.doc, err = load(); err != nil {
		return nil, err
	}
	if spec.strict, err = load(); err != nil {
		return nil, err
	}
	closeObjectSchemas(spec.strict)
	if spec.router, err = gorillamux.NewRouter(spec.strict); err != nil {
		return nil, err
	}
	return spec, nil
})

func loadedOpenAPI(t testing.TB) *openAPISpec {
	t.Helper()
	spec, err := openAPISpecOnce()
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// closeObjectSchemas sets additionalProperties: false on every object
// schema of doc that lists properties and says nothing about others.
func closeObjectSchemas(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(ref *openapi3.SchemaRef)
	walk = func(ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
			s.AdditionalProperties.Has = new(false)
		}
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
		walk(s.Not)
		walk(s.AdditionalProperties.Schema)
		for _, sub := range slices.Concat(s.AllOf, s.OneOf, s.AnyOf) {
			walk(sub)
		}
	}
	for _, s := range doc.Components.Schemas {
		walk(s)
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, r := range op.Responses.Map() {
				for _, mt := range r.Value.Content {
					walk(mt.Schema)
				}
			}
		}
	}
}

// answersChecked counts the answers checkAnswer validated.
var answersChecked atomic.Int64

// checkAnswer validates one answer of the API against the document with
// kin-openapi: an answer of a documented operation against the response
// declared for its status (declared explicitly: default does not count),
// content type, schema, required fields, nulls and no undocumented field;
// an answer outside any operation (unknown route or method) must be an
// error in the JSON error shape. Answers outside /api/v1 and to HEAD
// requests are not the document's business.
func checkAnswer(req *http.Request, status int, header http.Header, body []byte) error {
	if !strings.HasPrefix(req.URL.Path, Prefix+"/") || req.Method == http.MethodHead {
		return nil
	}
	spec, err := openAPISpecOnce()
	if err != nil {
		return err
	}
	answersChecked.Add(1)
	route, params, err := spec.router.FindRoute(req)
	if errors.Is(err, routers.ErrPathNotFound) || errors.Is(err, routers.ErrMethodNotAllowed) {
		return checkErrorShape(spec, status, header, body)
	}
	if err != nil {
		return err
	}
	return validateAnswer(route, params, req, status, header, body)
}

func validateAnswer(route *routers.Route, params map[string]string, req *http.Request, status int, header http.Header, body []byte) error {
	if route.Operation.Responses.Status(status) == nil {
		return fmt.Errorf("status %d is not declared for %s %s", status, route.Method, route.Path)
	}
	return openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true,
			SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()}},
	})
}

func checkErrorShape(spec *openAPISpec, status int, header http.Header, body []byte) error {
	if status < 400 {
		return fmt.Errorf("status %d outside any documented operation", status)
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("error answer with Content-Type %q", ct)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("error answer is not JSON: %w", err)
	}
	return spec.strict.Components.Schemas["ErrorBody"].Value.VisitJSON(v, openapi3.MultiErrors(), openapi3.DisableSchemaErrorDetails())
}

// CheckAnswer is checkAnswer for the tests of package api_test.
var CheckAnswer = checkAnswer

// checkAnswers serves h and checks every answer under /api/v1 with
// checkAnswer before the client sees it. The API tests serve the API
// through it, so every answer they receive is validated.
func checkAnswers(t testing.TB, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if err := checkAnswer(r, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
			t.Errorf("%s %s answered %d, which openapi.yaml does not describe: %v\nbody: %s", r.Method, r.URL, rec.Code, err, rec.Body)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// checkSchema validates a JSON answer against the response documented for
// docPath and method at its status.
func checkSchema(t *testing.T, method, docPath string, status int, body []byte) {
	t.Helper()
	spec := loadedOpenAPI(t)
	item := spec.strict.Paths.Value(docPath)
	if item == nil || item.GetOperation(method) == nil {
		t.Fatalf("%s %s is not in openapi.yaml", method, docPath)
	}
	route := &routers.Route{Spec: spec.strict, Path: docPath, PathItem: item, Method: method, Operation: item.GetOperation(method)}
	req := httptest.NewRequest(method, Prefix+docPath, nil)
	if err := validateAnswer(route, nil, req, status, http.Header{"Content-Type": {"application/json"}}, body); err != nil {
		t.Errorf("%s %s: %v", method, docPath, err)
	}
}

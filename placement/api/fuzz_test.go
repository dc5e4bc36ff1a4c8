package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fuzzEndpoints are the endpoints that read a request body.
var fuzzEndpoints = []struct{ method, path string }{
	{"POST", "/api/v1/placements/check"},
	{"POST", "/api/v1/placements"},
	{"POST", "/api/v1/organizations/acme/deployments/check"},
	{"POST", "/api/v1/builds/placements"},
	{"POST", "/api/v1/builds/estimate"},
	{"POST", "/api/v1/builds/rsv_0/start"},
	{"POST", "/api/v1/builds/rsv_0/finish"},
	{"POST", "/api/v1/reservations/rsv_0/confirm"},
	{"DELETE", "/api/v1/reservations/rsv_0"},
}

// FuzzEndpoints sends any body to every endpoint that reads one, through
// the whole handler (decoders, validation, the placer): the answer is a
// 2xx, or a 4xx in the JSON error shape; never a panic or a 5xx.
func FuzzEndpoints(f *testing.F) {
	for _, s := range []string{
		`{"server":"app-1","requirements":{"cpu":"0.5","memory":"512m","disk":"1g"}}`,
		`{"requirements":{"cpu":"1.5","memory":"512m","disk":"1g"},"organization":"acme","application_id":"42","reserve":true,"ttl":"5m","idempotency_key":"d-1"}`,
		`{"requirements":{"cpu":"0.5","memory":"1g"},"new_application":true}`,
		`{"application_id":"42","build_pack":"nixpacks","repository_size_mb":120,"reserve":true}`,
		`{"ttl":"30m"}`, `{}`, ``, `{{{not json`, `{"requirements":{"cpu":1.0000000001}}`, `{"candidates":[]}`,
		`{"requirements":{"memory":" 1"}}`, `{"ttl":0.0001}`, `{"strategy":""}`, `[]`, `null`,
	} {
		for i := range fuzzEndpoints {
			f.Add(uint8(i), []byte(s))
		}
	}
	e := newTestEnv(f)
	f.Fuzz(func(t *testing.T, endpoint uint8, body []byte) {
		ep := fuzzEndpoints[int(endpoint)%len(fuzzEndpoints)]
		req := httptest.NewRequest(ep.method, ep.path, strings.NewReader(string(body)))
		rec := httptest.NewRecorder()
		e.api.ServeHTTP(rec, req)
		if err := checkAnswer(req, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
			t.Fatalf("%s %s %q: %d does not match openapi.yaml: %v\n%s", ep.method, ep.path, body, rec.Code, err, rec.Body)
		}
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", ep.method, ep.path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var shape struct {
				Error *Error `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &shape); err != nil || shape.Error == nil || shape.Error.Code == "" || shape.Error.Message == "" {
				t.Fatalf("%s %s %q: %d answered outside the JSON error shape: %s", ep.method, ep.path, body, rec.Code, rec.Body)
			}
		}
		if rec.Code != http.StatusOK && rec.Code < 400 {
			t.Fatalf("%s %s %q: unexpected status %d", ep.method, ep.path, body, rec.Code)
		}
	})
}

package api

import (
	"strings"
	"testing"
)

// TestBadInput sends every kind of bad input the API must refuse: each gets
// a 4xx in the JSON error model, with the field at fault named — never a
// 500.
func TestBadInput(t *testing.T) {
	e := newTestEnv(t)
	const place, check = "/api/v1/placements", "/api/v1/placements/check"
	cases := []struct {
		name         string
		method, path string
		body         string
		header       []string
		status       int
		code, field  string
	}{
		{"malformed JSON", "POST", place, `{"requirements":`, nil, 400, CodeInvalidArgument, ""},
		{"syntax error", "POST", place, `{"requirements":{cpu:1}}`, nil, 400, CodeInvalidArgument, ""},
		{"empty body", "POST", place, ``, nil, 400, CodeInvalidArgument, ""},
		{"array instead of object", "POST", place, `[]`, nil, 400, CodeInvalidArgument, ""},
		{"trailing data", "POST", place, `{"requirements":{}} {}`, nil, 400, CodeInvalidArgument, ""},
		{"unknown top-level field", "POST", place, `{"requirements":{"cpu":1},"priority":9}`, nil, 400, CodeInvalidArgument, "priority"},
		{"unknown requirement", "POST", place, `{"requirements":{"cpu":1,"gpu":1}}`, nil, 400, CodeInvalidArgument, "requirements.gpu"},
		{"missing requirements", "POST", place, `{"reserve":true}`, nil, 400, CodeInvalidArgument, "requirements"},
		{"negative cpu number", "POST", place, `{"requirements":{"cpu":-1}}`, nil, 400, CodeInvalidArgument, "requirements.cpu"},
		{"negative cpu string", "POST", place, `{"requirements":{"cpu":"-0.5"}}`, nil, 400, CodeInvalidArgument, "requirements.cpu"},
		{"negative memory", "POST", place, `{"requirements":{"memory":"-512m"}}`, nil, 400, CodeInvalidArgument, "requirements.memory"},
		{"negative disk bytes", "POST", place, `{"requirements":{"disk":-1}}`, nil, 400, CodeInvalidArgument, "requirements.disk"},
		{"absurd cpu", "POST", place, `{"requirements":{"cpu":1e12}}`, nil, 400, CodeInvalidArgument, "requirements.cpu"},
		{"absurd memory", "POST", place, `{"requirements":{"memory":"9999999p"}}`, nil, 400, CodeInvalidArgument, "requirements.memory"},
		{"not finite", "POST", place, `{"requirements":{"cpu":1e400}}`, nil, 400, CodeInvalidArgument, "requirements.cpu"},
		{"bad memory unit", "POST", place, `{"requirements":{"memory":"512x"}}`, nil, 400, CodeInvalidArgument, "requirements.memory"},
		{"bad disk unit", "POST", place, `{"requirements":{"disk":"1 gigabyte"}}`, nil, 400, CodeInvalidArgument, "requirements.disk"},
		{"millicores", "POST", place, `{"requirements":{"cpu":"500m"}}`, nil, 400, CodeInvalidArgument, "requirements.cpu"},
		{"memory as boolean", "POST", place, `{"requirements":{"memory":true}}`, nil, 400, CodeInvalidArgument, "requirements.memory"},
		{"requirements as string", "POST", place, `{"requirements":"1g"}`, nil, 400, CodeInvalidArgument, "requirements"},
		{"reserve as string", "POST", place, `{"requirements":{},"reserve":"yes"}`, nil, 400, CodeInvalidArgument, "reserve"},
		{"candidates as string", "POST", place, `{"requirements":{},"candidates":"app-1"}`, nil, 400, CodeInvalidArgument, "candidates"},
		{"candidate as number", "POST", place, `{"requirements":{},"candidates":["app-1",7]}`, nil, 400, CodeInvalidArgument, "candidates"},
		{"empty candidate", "POST", place, `{"requirements":{},"candidates":[""]}`, nil, 400, CodeInvalidArgument, "candidates[0]"},
		{"unknown strategy", "POST", place, `{"requirements":{},"strategy":"random"}`, nil, 400, CodeInvalidArgument, "strategy"},
		{"bad ttl", "POST", place, `{"requirements":{},"reserve":true,"ttl":"forever"}`, nil, 400, CodeInvalidArgument, "ttl"},
		{"negative ttl", "POST", place, `{"requirements":{},"reserve":true,"ttl":-5}`, nil, 400, CodeInvalidArgument, "ttl"},
		{"ttl without reserve", "POST", place, `{"requirements":{},"ttl":"5m"}`, nil, 400, CodeInvalidArgument, "ttl"},
		{"ttl above max_ttl", "POST", place, `{"requirements":{},"reserve":true,"ttl":"48h"}`, nil, 422, CodeUnprocessable, "ttl"},
		{"idempotency key as number", "POST", place, `{"requirements":{},"idempotency_key":5}`, nil, 400, CodeInvalidArgument, "idempotency_key"},
		{"form instead of JSON", "POST", place, `requirements=1`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 400, CodeInvalidArgument, ""},
		{"body too large", "POST", place, `{"requirements":{},"candidates":["` + strings.Repeat("a", maxBodyBytes) + `"]}`, nil, 413, CodeTooLarge, ""},
		{"check without server", "POST", check, `{"requirements":{"cpu":1}}`, nil, 400, CodeInvalidArgument, "server"},
		{"check server as number", "POST", check, `{"server":1,"requirements":{"cpu":1}}`, nil, 400, CodeInvalidArgument, "server"},
		{"check without requirements", "POST", check, `{"server":"app-1"}`, nil, 400, CodeInvalidArgument, "requirements"},
		{"check unknown server", "POST", check, `{"server":"nope","requirements":{"cpu":1}}`, nil, 404, CodeNotFound, "server"},
		{"check unknown kind", "POST", check, `{"server":"app-1","requirements":{},"kind":"cronjob"}`, nil, 400, CodeInvalidArgument, "kind"},
		{"check bad unit", "POST", check, `{"server":"app-1","requirements":{"memory":"1gb!"}}`, nil, 400, CodeInvalidArgument, "requirements.memory"},
		{"unknown server", "GET", "/api/v1/servers/nope", ``, nil, 404, CodeNotFound, "server"},
		{"bad role filter", "GET", "/api/v1/servers?role=database", ``, nil, 400, CodeInvalidArgument, "role"},
		{"bad kind filter", "GET", "/api/v1/reservations?kind=x", ``, nil, 400, CodeInvalidArgument, "kind"},
		{"unknown reservation confirm", "POST", "/api/v1/reservations/r-nope/confirm", ``, nil, 404, CodeNotFound, "id"},
		{"unknown reservation delete", "DELETE", "/api/v1/reservations/r-nope", ``, nil, 404, CodeNotFound, "id"},
		{"unknown API path", "GET", "/api/v1/nodes", ``, nil, 404, CodeNotFound, ""},
		{"unknown path", "GET", "/nope", ``, nil, 404, CodeNotFound, ""},
		{"wrong method", "PUT", "/api/v1/servers", `{}`, nil, 405, CodeMethodNotAllowed, ""},
		{"GET on a POST route", "GET", place, ``, nil, 405, CodeMethodNotAllowed, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, b, _ := e.do(tc.method, tc.path, tc.body, tc.header...)
			if status != tc.status {
				t.Fatalf("status %d, want %d; body: %s", status, tc.status, b)
			}
			got := apiError(t, b)
			if got.Code != tc.code || got.Field != tc.field {
				t.Errorf("code %q field %q, want %q %q; message: %s", got.Code, got.Field, tc.code, tc.field, got.Message)
			}
			if tc.field != "" && !strings.Contains(got.Message, tc.field) && tc.status == 400 {
				t.Errorf("message %q does not name the field %q", got.Message, tc.field)
			}
		})
	}
	if got := metricValue(t, e.reg, "berth_placement_requests_total", map[string]string{"code": "500"}); got != 0 {
		t.Errorf("%v requests answered 500", got)
	}
}

// FuzzDecodePlacementRequest: whatever the body, decoding answers nil or a
// 4xx *Error, never a panic or a 5xx.
func FuzzDecodePlacementRequest(f *testing.F) {
	for _, s := range []string{
		`{"requirements":{"cpu":"1.5","memory":"512m","disk":"1g"},"reserve":true,"ttl":"5m"}`,
		`{"requirements":{"gpu":1}}`, `{"candidates":[1]}`, `[]`, `{`, `{"ttl":1e400}`, `{"requirements":{"memory":"1.5 GiB"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req PlacementRequest
		err := decodeBody(body, &req)
		if err == nil {
			return
		}
		apiErr, ok := err.(*Error)
		if !ok {
			t.Fatalf("%T %v is not an API error", err, err)
		}
		if apiErr.Status < 400 || apiErr.Status > 499 || apiErr.Message == "" {
			t.Fatalf("bad error for %q: %+v", body, apiErr)
		}
	})
}

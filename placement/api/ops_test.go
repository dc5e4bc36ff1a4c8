package api

import (
	"github.com/berth-dev/berth/placement/policy"

	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/berth-dev/berth/placement"
)

func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("scoring:\n  strategy: spread\n")
	store, err := policy.NewStore(path)
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, withPolicy(store), func(o *Options, _ *testEnv) {
		o.Reloaders = []Reloader{{Name: "policy", Reload: store.Reload, Code: CodeInvalidPolicy}}
	})
	strategy := func() placement.Strategy {
		var d PlacementResponse
		e.json("POST", "/api/v1/placements", `{"requirements":{"cpu":1}}`, 200, &d)
		return d.Strategy
	}
	if got := strategy(); got != placement.StrategySpread {
		t.Fatalf("strategy %q", got)
	}

	write("scoring:\n  strategy: pack\n")
	var answer ReloadAnswer
	e.json("POST", "/-/reload", "", 200, &answer)
	if want := []ReloadOutcome{{Name: "policy", Outcome: ReloadReloaded}}; !reflect.DeepEqual(answer.Reloaders, want) {
		t.Errorf("reload answer %+v, want %+v", answer.Reloaders, want)
	}
	if got := strategy(); got != placement.StrategyPack {
		t.Fatalf("after reload strategy %q, want pack", got)
	}

	// A refused file is bad input (422 naming the policy path), never a
	// 500, and the previous policy stays.
	for _, tc := range []struct{ name, policy, field string }{
		{"bad enum", "scoring:\n  strategy: sideways\n", "scoring.strategy"},
		{"wrong type", "scoring:\n  strategy: [a, b]\n", "scoring.strategy"},
		{"unknown field", "scoring:\n  strategategy: pack\n", "scoring.strategategy"},
		{"negative quota", "quotas:\n  organizations:\n    acme: {max_servers: -1}\n", "quotas.organizations.acme.max_servers"},
		{"not yaml", "scoring: [\n", ""},
		{"emptied file", "", ""},
		{"truncated file", "scoring:\n  strategy: pack\nquotas:\n", "quotas"},
		{"fraction for a whole number", "quotas:\n  organizations:\n    acme: {max_servers: 2.5}\n", "quotas.organizations.acme.max_servers"},
		{"duplicate key", "scoring:\n  strategy: pack\n  strategy: spread\n", "scoring.strategy"},
	} {
		write(tc.policy)
		status, b, _ := e.do("POST", "/-/reload", "")
		if status != 422 {
			t.Errorf("%s: bad policy reload: %d %s, want 422", tc.name, status, b)
			continue
		}
		got := apiError(t, b)
		if got.Code != CodeInvalidPolicy || got.Field != tc.field || !strings.Contains(got.Message, "reloading policy") || !strings.Contains(got.Message, path) {
			t.Errorf("%s: bad policy reload error %+v, want code %s, field %q and the file", tc.name, got, CodeInvalidPolicy, tc.field)
		}
		if got := strategy(); got != placement.StrategyPack {
			t.Fatalf("%s: a refused reload changed the policy: strategy %q", tc.name, got)
		}
	}
	// Another reloader's refusal is invalid_argument, also 422.
	other := newTestEnv(t, func(o *Options, _ *testEnv) {
		o.Reloaders = []Reloader{{Name: "bearer tokens", Reload: func() error { return errors.New("bearer tokens file x holds no token") }}}
	})
	if status, b, _ := other.do("POST", "/-/reload", ""); status != 422 || apiError(t, b).Code != CodeInvalidArgument || !strings.Contains(apiError(t, b).Message, "holds no token") {
		t.Errorf("refused tokens reload: %d %s, want 422 invalid_argument", status, b)
	}
	if status, _, _ := e.do("GET", "/-/reload", ""); status != 405 {
		t.Errorf("GET /-/reload: %d, want 405", status)
	}
}

// TestReloadEachFileOnItsOwn: a refused policy file neither stops a
// rotated token file from being reloaded nor hides it; the answer lists
// each reloader's outcome, and the refused policy stays as it was.
func TestReloadEachFileOnItsOwn(t *testing.T) {
	dir := t.TempDir()
	policyPath, tokensPath := filepath.Join(dir, "policy.yml"), filepath.Join(dir, "tokens")
	write := func(path, s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(policyPath, "scoring:\n  strategy: pack\n")
	write(tokensPath, "old-token\n")
	policies, err := policy.NewStore(policyPath)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := LoadTokens(tokensPath)
	if err != nil {
		t.Fatal(err)
	}
	promReloads := 0
	promErr := error(nil)
	e := newTestEnv(t, withPolicy(policies), func(o *Options, _ *testEnv) {
		o.Tokens = tokens
		o.Reloaders = []Reloader{
			{Name: "placement policy", Reload: policies.Reload, Code: CodeInvalidPolicy},
			{Name: "bearer tokens", Reload: tokens.Reload},
			{Name: "prometheus configuration and rules", Reload: func() error { promReloads++; return promErr }},
		}
	})
	auth := func(token string) []string { return []string{"Authorization", "Bearer " + token} }
	before := policies.Policy()

	// A bad policy (a fraction for a whole number) and a rotated token file.
	write(policyPath, "scoring:\n  strategy: spread\nquotas:\n  organizations:\n    acme: {max_servers: 2.5}\n")
	write(tokensPath, "new-token\n")
	status, b, _ := e.do("POST", "/-/reload", "", auth("old-token")...)
	if status != 422 {
		t.Fatalf("reload with a bad policy: %d %s, want 422", status, b)
	}
	got := apiError(t, b)
	if got.Code != CodeInvalidPolicy || got.Field != "quotas.organizations.acme.max_servers" || !strings.Contains(got.Message, policyPath) {
		t.Errorf("error %+v, want invalid_policy naming the field and the file", got)
	}
	var details ReloadAnswer
	if raw, err := json.Marshal(got.Details); err != nil || json.Unmarshal(raw, &details) != nil {
		t.Fatalf("details %v are not a reload answer", got.Details)
	}
	want := []ReloadOutcome{
		{Name: "placement policy", Outcome: ReloadRefused, Error: &Error{Code: CodeInvalidPolicy, Field: "quotas.organizations.acme.max_servers"}},
		{Name: "bearer tokens", Outcome: ReloadReloaded},
		{Name: "prometheus configuration and rules", Outcome: ReloadReloaded},
	}
	if len(details.Reloaders) != len(want) {
		t.Fatalf("outcomes %+v, want %+v", details.Reloaders, want)
	}
	for i, w := range want {
		g := details.Reloaders[i]
		if g.Name != w.Name || g.Outcome != w.Outcome || (g.Error == nil) != (w.Error == nil) ||
			w.Error != nil && (g.Error.Code != w.Error.Code || g.Error.Field != w.Error.Field || !strings.Contains(g.Error.Message, "want a whole number")) {
			t.Errorf("outcome %d: %+v (error %+v), want %+v (error %+v)", i, g, g.Error, w, w.Error)
		}
	}
	if promReloads != 1 {
		t.Errorf("the reloader after the refused ones ran %d times, want 1", promReloads)
	}
	// The rotated token is in force, the old one is not; the policy is the old one.
	if status, b, _ := e.do("GET", "/api/v1/servers", "", auth("new-token")...); status != 200 {
		t.Errorf("rotated token after a reload with a bad policy: %d %s", status, b)
	}
	if status, _, _ := e.do("GET", "/api/v1/servers", "", auth("old-token")...); status != 401 {
		t.Errorf("old token after rotation: %d, want 401", status)
	}
	if policies.Policy() != before {
		t.Error("a refused policy file replaced the policy")
	}

	// Two refusals: the first one's code and field, both in the message;
	// the token file that refuses keeps the tokens in force.
	write(tokensPath, "# no token left\n")
	promErr = errors.New("rule file r.yml: bad expression")
	status, b, _ = e.do("POST", "/-/reload", "", auth("new-token")...)
	got = apiError(t, b)
	if status != 422 || got.Code != CodeInvalidPolicy || got.Field != "quotas.organizations.acme.max_servers" ||
		!strings.Contains(got.Message, "reloading bearer tokens") || !strings.Contains(got.Message, "bad expression") {
		t.Errorf("three refusals: %d %+v", status, got)
	}
	// The policy fixed, the others still refused: the first refusal is now
	// the tokens', invalid_argument without a field.
	write(policyPath, "scoring:\n  strategy: spread\n")
	status, b, _ = e.do("POST", "/-/reload", "", auth("new-token")...)
	got = apiError(t, b)
	if status != 422 || got.Code != CodeInvalidArgument || got.Field != "" || strings.Contains(got.Message, "reloading placement policy") {
		t.Errorf("policy fixed, tokens and rules refused: %d %+v", status, got)
	}
	if policies.Policy().Scoring.Strategy != placement.StrategySpread {
		t.Error("the fixed policy was not reloaded next to refused files")
	}
	// All good again: 200 listing each.
	write(tokensPath, "new-token\n")
	promErr = nil
	var answer ReloadAnswer
	status, b, _ = e.do("POST", "/-/reload", "", auth("new-token")...)
	if status != 200 || json.Unmarshal(b, &answer) != nil || len(answer.Reloaders) != 3 {
		t.Fatalf("reload of good files: %d %s", status, b)
	}
	for _, o := range answer.Reloaders {
		if o.Outcome != ReloadReloaded || o.Error != nil {
			t.Errorf("outcome %+v, want reloaded", o)
		}
	}
	// SIGHUP's path: the same, an error per refusal.
	write(policyPath, "")
	write(tokensPath, "sighup-token\n")
	err = e.api.Reload()
	var re *ReloadError
	if !errors.As(err, &re) || re.Reloader != "placement policy" || !errors.Is(err, policy.ErrEmpty) {
		t.Errorf("Reload() = %v, want the policy's refusal", err)
	}
	if status, _, _ := e.do("GET", "/api/v1/servers", "", auth("sighup-token")...); status != 200 {
		t.Errorf("token rotated next to an emptied policy file: %d", status)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	e := newTestEnv(t)
	for path, want := range map[string]string{"/-/healthy": "Healthy", "/-/ready": "Ready"} {
		status, b, _ := e.do("GET", path, "")
		if status != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d %s", path, status, b)
		}
	}
	status, b, _ := e.do("GET", "/", "")
	if status != 200 {
		t.Fatalf("landing page: %d", status)
	}
	if strings.Contains(string(b), "debug/pprof") {
		t.Error("landing page links to pprof, which is not served")
	}
	for _, r := range e.api.routes {
		if !strings.Contains(string(b), Prefix+openAPIPath(r.Path)) {
			t.Errorf("landing page does not list %s %s", r.Method, r.Path)
		}
	}

	// Requests are counted under their route template, never the raw URL.
	e.do("GET", "/api/v1/servers/app-1", "")
	e.do("GET", "/api/v1/servers/app-2", "")
	e.do("GET", "/api/v1/servers/nope", "")
	e.do("GET", "/no/such/path", "")
	if got := metricValue(t, e.reg, "berth_placement_requests_total", map[string]string{"endpoint": "/api/v1/servers/:server", "code": "200"}); got != 2 {
		t.Errorf("requests{endpoint=/api/v1/servers/:server,code=200} = %v, want 2", got)
	}
	if got := metricValue(t, e.reg, "berth_placement_requests_total", map[string]string{"endpoint": "/api/v1/servers/:server", "code": "404"}); got != 1 {
		t.Errorf("requests{code=404} = %v, want 1", got)
	}
	if got := metricValue(t, e.reg, "berth_placement_request_duration_seconds", map[string]string{"endpoint": "/api/v1/servers/:server"}); got != 3 {
		t.Errorf("duration observations = %v, want 3", got)
	}
	status, b, _ = e.do("GET", "/metrics", "")
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	for _, want := range []string{`berth_placement_requests_total{code="404",endpoint="unmatched"} 1`, "berth_placement_request_duration_seconds_bucket"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(b), "/no/such/path") || strings.Contains(string(b), "app-2") {
		t.Error("/metrics carries a raw URL")
	}
}

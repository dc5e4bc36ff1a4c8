package api

import (
	"errors"
	"os"
	"path/filepath"
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
	store, err := placement.NewPolicyStore(path)
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
	if status, b, _ := e.do("POST", "/-/reload", ""); status != 200 {
		t.Fatalf("reload: %d %s", status, b)
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
	} {
		write(tc.policy)
		status, b, _ := e.do("POST", "/-/reload", "")
		if status != 422 {
			t.Errorf("%s: bad policy reload: %d %s, want 422", tc.name, status, b)
			continue
		}
		got := apiError(t, b)
		if got.Code != CodeInvalidPolicy || got.Field != tc.field || !strings.Contains(got.Message, "reloading policy") {
			t.Errorf("%s: bad policy reload error %+v, want code %s, field %q", tc.name, got, CodeInvalidPolicy, tc.field)
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

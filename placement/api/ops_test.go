package api

import (
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
		o.Reloaders = []Reloader{{Name: "policy", Reload: store.Reload}}
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

	write("scoring:\n  strategy: sideways\n")
	status, b, _ := e.do("POST", "/-/reload", "")
	if status != 500 {
		t.Fatalf("bad policy reload: %d %s", status, b)
	}
	if got := apiError(t, b); got.Code != CodeReloadFailed || !strings.Contains(got.Message, "strategy") {
		t.Errorf("bad policy reload error %+v, want it to name scoring.strategy", got)
	}
	if got := strategy(); got != placement.StrategyPack {
		t.Fatalf("a refused reload changed the policy: strategy %q", got)
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

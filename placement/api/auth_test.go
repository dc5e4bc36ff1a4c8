package api

import (
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAuth(t *testing.T) {
	reloads := 0
	e := newTestEnv(t, withTokens("s3cret-one", "s3cret-two"), func(o *Options, _ *testEnv) {
		o.Reloaders = []Reloader{{Name: "counter", Reload: func() error { reloads++; return nil }}}
		// Stands for the embedded Prometheus API: arbitrary PromQL.
		o.Mounts = map[string]http.Handler{"/prometheus": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"status":"success"}`))
		})}
	})
	for _, tc := range []struct {
		name, header string
		status       int
	}{
		{"no token", "", 401},
		{"wrong token", "Bearer nope", 401},
		{"prefix of a token", "Bearer s3cret", 401},
		{"token with extra", "Bearer s3cret-one-more", 401},
		{"basic scheme", "Basic czNjcmV0LW9uZQ==", 401},
		{"empty bearer", "Bearer ", 401},
		{"first token", "Bearer s3cret-one", 200},
		{"second token", "Bearer s3cret-two", 200},
		{"lower-case scheme", "bearer s3cret-two", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h []string
			if tc.header != "" {
				h = []string{"Authorization", tc.header}
			}
			status, b, header := e.do("GET", "/api/v1/servers", "", h...)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, b)
			}
			if status == 401 {
				if got := apiError(t, b); got.Code != CodeUnauthenticated {
					t.Errorf("code %q", got.Code)
				}
				if !strings.HasPrefix(header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate %q", header.Get("WWW-Authenticate"))
				}
				if strings.Contains(string(b), "s3cret") {
					t.Errorf("the answer leaks a token: %s", b)
				}
			}
		})
	}
	// Every API route, and unknown ones, need the token; POST bodies are
	// not even read without it.
	for _, r := range [][2]string{
		{"POST", "/api/v1/placements"}, {"POST", "/api/v1/placements/check"}, {"GET", "/api/v1/reservations"},
		{"DELETE", "/api/v1/reservations/x"}, {"GET", "/api/v1/openapi.json"}, {"GET", "/api/v1/nope"},
		{"PUT", "/api/v1/servers"}, {"GET", "/api/v1"},
		{"POST", "/-/reload"}, {"PUT", "/-/reload"}, {"GET", "/-/reload"},
		{"GET", "/prometheus/api/v1/query?query=up"}, {"POST", "/prometheus/api/v1/query"}, {"GET", "/prometheus/"},
	} {
		if status, b, _ := e.do(r[0], r[1], `{"requirements":{}}`); status != 401 {
			t.Errorf("%s %s without token: %d %s", r[0], r[1], status, b)
		}
		if status, b, _ := e.do(r[0], r[1], `{"requirements":{}}`, "Authorization", "Bearer nope"); status != 401 {
			t.Errorf("%s %s with a wrong token: %d %s", r[0], r[1], status, b)
		}
	}
	if reloads != 0 {
		t.Errorf("reload ran %d times without a token", reloads)
	}
	// With the token, reload and the mounted Prometheus API answer.
	if status, b, _ := e.do("POST", "/-/reload", "", "Authorization", "Bearer s3cret-one"); status != 200 || reloads != 1 {
		t.Errorf("POST /-/reload with token: %d %s (reloads %d)", status, b, reloads)
	}
	if status, b, _ := e.do("GET", "/prometheus/api/v1/query?query=up", "", "Authorization", "Bearer s3cret-two"); status != 200 || !strings.Contains(string(b), "success") {
		t.Errorf("GET /prometheus/api/v1/query with token: %d %s", status, b)
	}
	// Basic auth of the web config takes the first Authorization header;
	// the bearer token may come in a second one.
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:pass"))
	if status, b, _ := e.do("GET", "/api/v1/servers", "", "Authorization", basic, "Authorization", "Bearer s3cret-one"); status != 200 {
		t.Errorf("basic then bearer header: %d %s", status, b)
	}
	if status, b, _ := e.do("GET", "/api/v1/servers", "", "Authorization", basic, "Authorization", "Bearer nope"); status != 401 {
		t.Errorf("basic then a wrong bearer header: %d %s", status, b)
	}
	// Operational endpoints follow the web config only.
	for _, p := range []string{"/metrics", "/-/healthy", "/-/ready", "/"} {
		if status, b, _ := e.do("GET", p, ""); status != 200 {
			t.Errorf("GET %s without token: %d %s", p, status, b)
		}
	}
}

func TestLoadTokens(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if tok, err := LoadTokens(""); err != nil || tok.Enabled() {
		t.Errorf("no file: %v enabled=%v", err, tok.Enabled())
	}
	if _, err := LoadTokens(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := LoadTokens(write("empty", "# nothing\n\n")); err == nil {
		t.Error("a file without tokens must not mean 'no auth'")
	}
	_, err := LoadTokens(write("space", "abc def\n"))
	if err == nil || strings.Contains(err.Error(), "abc") {
		t.Errorf("token with space: %v (must fail without echoing the token)", err)
	}

	path := write("rotate", "old\n")
	tok, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	write("rotate", "new\n")
	if err := tok.Reload(); err != nil {
		t.Fatal(err)
	}
	if tok.valid([]byte("old")) || !tok.valid([]byte("new")) {
		t.Error("reload did not rotate the token")
	}
	write("rotate", "")
	if err := tok.Reload(); err == nil || !tok.valid([]byte("new")) {
		t.Errorf("a bad reload must keep the old tokens: %v", err)
	}
}

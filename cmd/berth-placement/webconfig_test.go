package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-dev/berth/internal/testenv"
)

// TestIntegrationWebConfig runs the real berth-placement with an
// exporter-toolkit web config (TLS with a self-signed certificate, basic
// auth) and bearer tokens: the web config guards everything, the tokens
// guard the API, /-/reload and the embedded Prometheus API on top of it.
func TestIntegrationWebConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	bin := testenv.Binary(t, "berth-placement")
	dir := t.TempDir()
	addr := testenv.FreePort(t)
	certFile, keyFile, pool := testenv.SelfSignedCert(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := writeTestFile(t, dir, "web.yml", fmt.Sprintf(
		"tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  berth: %s\n", certFile, keyFile, hash))
	tokens := writeTestFile(t, dir, "tokens", "api-token-1\n")
	// Nothing listens on the exporter address: the API need not have data
	// to answer the calls below.
	proc := testenv.Start(t, bin, "--web.listen-address="+addr, "--web.config.file="+webConfig,
		"--web.bearer-tokens-file="+tokens, "--storage.path="+filepath.Join(dir, "data"),
		"--scrape.exporter-address="+testenv.FreePort(t))

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := "https://" + addr
	call := func(method, path, user, pass, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Basic auth goes first: the web config reads the first
		// Authorization header, berth-placement finds the bearer one.
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		if token != "" {
			req.Header.Add("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		status, body := call("GET", "/-/healthy", "berth", "s3cret-pass", "")
		if status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("https /-/healthy never answered 200: %d %s\n%s", status, body, proc.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Plain HTTP is not served.
	if resp, err := http.Get("http://" + addr + "/-/healthy"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain http answered 200 on a TLS listener")
		}
	}
	for _, tc := range []struct {
		name, method, path, user, pass, token string
		status                                int
	}{
		{"healthy without credentials", "GET", "/-/healthy", "", "", "", 401},
		{"metrics without credentials", "GET", "/metrics", "", "", "", 401},
		{"api without credentials", "GET", "/api/v1/reservations", "", "", "", 401},
		{"api with a token only", "GET", "/api/v1/reservations", "", "", "api-token-1", 401},
		{"api with a wrong password", "GET", "/api/v1/reservations", "berth", "nope", "api-token-1", 401},
		{"api with basic auth only", "GET", "/api/v1/reservations", "berth", "s3cret-pass", "", 401},
		{"api with a wrong token", "GET", "/api/v1/reservations", "berth", "s3cret-pass", "nope", 401},
		{"api with basic auth and token", "GET", "/api/v1/reservations", "berth", "s3cret-pass", "api-token-1", 200},
		{"metrics with basic auth", "GET", "/metrics", "berth", "s3cret-pass", "", 200},
		{"ready with basic auth", "GET", "/-/ready", "berth", "s3cret-pass", "", 200},
		{"promql with basic auth only", "GET", "/prometheus/api/v1/query?query=up", "berth", "s3cret-pass", "", 401},
		{"promql with basic auth and token", "GET", "/prometheus/api/v1/query?query=up", "berth", "s3cret-pass", "api-token-1", 200},
		{"reload with basic auth only", "POST", "/-/reload", "berth", "s3cret-pass", "", 401},
		{"reload with basic auth and token", "POST", "/-/reload", "berth", "s3cret-pass", "api-token-1", 200},
	} {
		status, body := call(tc.method, tc.path, tc.user, tc.pass, tc.token)
		if status != tc.status {
			t.Errorf("%s: %s %s: %d %s, want %d", tc.name, tc.method, tc.path, status, body, tc.status)
			continue
		}
		if status == 200 && strings.HasPrefix(tc.path, "/api/") {
			var list struct {
				Reservations []json.RawMessage `json:"reservations"`
			}
			if err := json.Unmarshal([]byte(body), &list); err != nil || list.Reservations == nil {
				t.Errorf("%s: not a reservation list: %s", tc.name, body)
			}
		}
	}
	if out := proc.Output(); strings.Contains(out, "api-token-1") || strings.Contains(out, "s3cret-pass") {
		t.Error("the log shows a credential")
	}
}

func writeTestFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

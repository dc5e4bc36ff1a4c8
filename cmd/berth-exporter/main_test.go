package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-dev/berth/internal/metriclint"
	"github.com/berth-dev/berth/internal/testenv"
)

// TestBadFlagsRefused runs the real binary with each bad flag value: it must
// exit on its own with status 2 and a message naming the flag, not panic,
// and not start serving.
func TestBadFlagsRefused(t *testing.T) {
	bin := testenv.Binary(t, "berth-exporter")
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	badWebConfig := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(badWebConfig, []byte("basic_auth_users:\n  admin: not-a-bcrypt-hash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		arg  string
		flag string // the flag the message must name
	}{
		{"--server.role=admin", "--server.role"},
		{"--server.role=", "--server.role"},
		{"--server.name= ", "--server.name"},
		{"--server.organization= acme", "--server.organization"},
		{"--server.disk-usage-threshold=0", "--server.disk-usage-threshold"},
		{"--server.disk-usage-threshold=1.5", "--server.disk-usage-threshold"},
		{"--server.disk-usage-threshold=-0.2", "--server.disk-usage-threshold"},
		{"--server.disk-usage-threshold=eighty", "--server.disk-usage-threshold"},
		{"--server.disk-usage-threshold=NaN", "--server.disk-usage-threshold"},
		{"--web.telemetry-path=metrics", "--web.telemetry-path"},
		{"--web.telemetry-path=", "--web.telemetry-path"},
		{"--web.telemetry-path=/metrics/", "--web.telemetry-path"},
		{"--web.telemetry-path=/a b", "--web.telemetry-path"},
		{"--web.telemetry-path=/{x}", "--web.telemetry-path"},
		{"--web.telemetry-path=GET /metrics", "--web.telemetry-path"},
		{"--web.telemetry-path=/-/healthy", "--web.telemetry-path"},
		{"--web.listen-address=9830", "--web.listen-address"},
		{"--web.config.file=/nonexistent/web.yml", "--web.config.file"},
		{"--web.config.file=" + badWebConfig, "--web.config.file"},
		{"--path.procfs=/nonexistent", "--path.procfs"},
		{"--path.procfs=" + t.TempDir(), "--path.procfs"}, // a directory, but no procfs
		{"--path.sysfs=/nonexistent", "--path.sysfs"},
		{"--path.rootfs=/nonexistent", "--path.rootfs"},
		{"--path.rootfs=" + notDir, "--path.rootfs"},
		{"--collector.filesystem.mount-points-exclude=^/(dev", "--collector.filesystem.mount-points-exclude"},
		{"--collector.filesystem.fs-types-exclude=(", "--collector.filesystem.fs-types-exclude"},
		{"--collector.filesystem.mount-timeout=0s", "--collector.filesystem.mount-timeout"},
		{"--collector.filesystem.mount-timeout=soon", "--collector.filesystem.mount-timeout"},
		{"--collector.netdev.device-exclude=[", "--collector.netdev.device-exclude"},
		{"--collector.netstat.fields=*", "--collector.netstat.fields"},
		{"--collector.containers.docker-host=ftp://x", "--collector.containers.docker-host"},
		{"--collector.containers.label-map=novalue", "--collector.containers.label-map"},
		{"--collector.containers.build-image-pattern=", "--collector.containers.build-image-pattern"},
		{"--collector.containers.build-image-pattern=(", "--collector.containers.build-image-pattern"},
		{"--collector.containers.procfs=/nonexistent", "--collector.containers.procfs"},
		{"--collector.containers.cgroupfs=/nonexistent", "--collector.containers.cgroupfs"},
		{"--collector.containers.relist-interval=0s", "--collector.containers.relist-interval"},
		{"--log.level=loud", "--log.level"},
		{"--log.format=xml", "--log.format"},
		{"--collector.nonexistent", "--collector.nonexistent"},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			// A free port, so that a value wrongly accepted shows as a
			// server that does not exit rather than as a port clash.
			args := []string{tc.arg, "--web.listen-address=" + testenv.FreePort(t)}
			if strings.HasPrefix(tc.arg, "--web.listen-address") {
				args = args[:1]
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("%s was accepted: the exporter was still running after 20s\n%s", tc.arg, out)
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("%s: want exit status 2, got %v\n%s", tc.arg, err, out)
			}
			var message string
			for line := range strings.Lines(string(out)) {
				if m, ok := strings.CutPrefix(line, "berth-exporter: error: "); ok {
					message = strings.TrimSpace(m)
				}
			}
			if !strings.Contains(message, tc.flag) {
				t.Errorf("%s: the error must name %s, got %q\nfull output:\n%s", tc.arg, tc.flag, message, out)
			}
			if bytes.Contains(out, []byte("panic")) || bytes.Contains(out, []byte("goroutine ")) {
				t.Errorf("%s: output has a panic or goroutine dump:\n%s", tc.arg, out)
			}
		})
	}
}

// waitListening polls until something answers HTTP(S) on url, whatever the
// status (a server behind basic auth answers 401).
func waitListening(t *testing.T, client *http.Client, url string, p *testenv.Process) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if p.Cmd.ProcessState != nil || time.Now().After(deadline) {
			t.Fatalf("%s did not answer within 20s: %v\n%s", url, err, p.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// get requests url, with basic auth when user is not empty, and returns the
// status and body.
func get(t *testing.T, client *http.Client, url, user, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// TestIntegrationWebConfig runs the real binary with --web.config.file:
// basic auth (bcrypt) over HTTP, then TLS with basic auth. Both /metrics
// and /-/healthy answer 401 without or with wrong credentials and 200 with
// the right ones.
func TestIntegrationWebConfig(t *testing.T) {
	bin := testenv.Binary(t, "berth-exporter")
	const user, password = "prometheus", "s3cret pass"
	// MinCost keeps the test fast; exporter-toolkit accepts any cost.
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile, pool := testenv.SelfSignedCert(t, dir)
	auth := "basic_auth_users:\n  " + user + ": " + string(hash) + "\n"
	tlsConf := "tls_server_config:\n  cert_file: " + certFile + "\n  key_file: " + keyFile + "\n"

	for _, tc := range []struct {
		name, config, scheme string
	}{
		{"basic_auth", auth, "http"},
		{"tls_and_basic_auth", tlsConf + auth, "https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			configFile := filepath.Join(dir, tc.name+".yml")
			if err := os.WriteFile(configFile, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			addr := testenv.FreePort(t)
			p := testenv.Start(t, bin, "--web.listen-address="+addr, "--web.config.file="+configFile,
				"--no-collector.containers", "--log.level=warn")
			client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			}}
			base := tc.scheme + "://" + addr
			waitListening(t, client, base+"/-/healthy", p)

			for _, path := range []string{"/metrics", "/-/healthy"} {
				if code, _ := get(t, client, base+path, "", ""); code != http.StatusUnauthorized {
					t.Errorf("%s%s without credentials: status %d, want 401", tc.scheme, path, code)
				}
				if code, _ := get(t, client, base+path, user, "wrong"); code != http.StatusUnauthorized {
					t.Errorf("%s%s with a wrong password: status %d, want 401", tc.scheme, path, code)
				}
				code, body := get(t, client, base+path, user, password)
				if code != http.StatusOK {
					t.Errorf("%s%s with credentials: status %d, want 200\n%s", tc.scheme, path, code, body)
				}
				if path == "/metrics" && !strings.Contains(body, "berth_exporter_build_info{") {
					t.Errorf("%s/metrics with credentials: no berth_exporter_build_info in the answer", tc.scheme)
				}
			}
			if tc.scheme == "https" {
				// Plain HTTP to the TLS port is not served.
				if code, _ := get(t, &http.Client{Timeout: 15 * time.Second}, "http://"+addr+"/-/healthy", user, password); code != http.StatusBadRequest {
					t.Errorf("plain http to the TLS listener: status %d, want 400", code)
				}
				// A client that does not trust the certificate is refused.
				if _, err := (&http.Client{Timeout: 15 * time.Second}).Get(base + "/-/healthy"); err == nil {
					t.Errorf("https with an untrusted certificate succeeded")
				}
			}
		})
	}
}

// camelCaseWarning is the only promtool complaint allowed: node_exporter's
// own names (node_memory_MemTotal_bytes, node_netstat_Tcp_CurrEstab…),
// kept for compatibility.
// TestIntegrationLintMetrics lints the real binary's whole /metrics answer
// (identity, system collectors, scrape engine, build info, Go and process
// metrics) with promlint, the linter of `promtool check metrics`.
func TestIntegrationLintMetrics(t *testing.T) {
	bin := testenv.Binary(t, "berth-exporter")
	addr := testenv.FreePort(t)
	testenv.Start(t, bin, "--web.listen-address="+addr, "--no-collector.containers", "--log.level=warn",
		"--server.name=app-1", "--server.organization=acme")
	url := "http://" + addr + "/metrics"
	testenv.WaitHTTP(t, url, 20*time.Second)
	code, body := get(t, &http.Client{Timeout: 15 * time.Second}, url, "", "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, code)
	}
	for _, family := range []string{
		"berth_exporter_build_info", "berth_server_info", "berth_server_disk_usage_threshold_ratio",
		"berth_scrape_collector_duration_seconds", "berth_scrape_collector_success",
		"node_cpu_seconds_total", "go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(body, "\n# TYPE "+family+" ") {
			t.Errorf("no %s family in the output: the lint would not cover it", family)
		}
	}

	if metriclint.Text(t, strings.NewReader(body), metriclint.NodeExporterCamelCase) == 0 {
		t.Errorf("expected node_exporter's inherited camelCase warnings, got none: is the lint checking anything?")
	}
}

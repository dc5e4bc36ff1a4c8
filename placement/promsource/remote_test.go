package promsource

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"

	"github.com/berth-dev/berth/placement/embedded"
)

// TestRemoteSendsCredentials checks the auth options reach the backend and
// that a non-vector answer is refused.
func TestRemoteSendsCredentials(t *testing.T) {
	var gotAuth, gotQuery string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		gotAuth, gotQuery = r.Header.Get("Authorization"), r.Form.Get("query")
		w.Header().Set("Content-Type", "application/json")
		if gotQuery == "1" {
			_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}`))
			return
		}
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"server":"a"},"value":[1,"4"]}]}}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	password := filepath.Join(dir, "password")
	if err := os.WriteFile(password, []byte("pw"), 0o600); err != nil {
		t.Fatal(err)
	}
	httpConfig := filepath.Join(dir, "http.yml")
	if err := os.WriteFile(httpConfig, []byte("authorization:\n  credentials: fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"bearer", Config{BearerTokenFile: token}, "Bearer s3cret"},
		{"basic", Config{BasicAuthUsername: "u", BasicAuthPasswordFile: password}, "Basic dTpwdw=="},
		{"http config file", Config{HTTPConfigFile: httpConfig}, "Bearer fromfile"},
		{"none", Config{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.PrometheusURL = srv.URL
			src, err := Open(c.cfg, promslog.NewNopLogger(), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			v, err := src.Querier.Query(context.Background(), "up", time.Now())
			if err != nil || len(v) != 1 || v[0].Value != 4 {
				t.Fatalf("query: %v, %v", v, err)
			}
			if gotAuth != c.want || gotQuery != "up" {
				t.Errorf("Authorization %q, query %q; want %q", gotAuth, gotQuery, c.want)
			}
			if _, err := src.Querier.Query(context.Background(), "1", time.Now()); err == nil || !strings.Contains(err.Error(), "want a vector") {
				t.Errorf("scalar answer: %v", err)
			}
		})
	}
}

func TestConfigErrorsNameTheFlag(t *testing.T) {
	cases := []struct {
		cfg  Config
		flag string
	}{
		{Config{PrometheusURL: "localhost:9090"}, "prometheus.url"},
		{Config{PrometheusURL: "ftp://x"}, "prometheus.url"},
		{Config{PrometheusURL: "http://x", RemoteTimeout: -time.Second}, "prometheus.timeout"},
		{Config{PrometheusURL: "http://x", HTTPConfigFile: "/nonexistent.yml"}, "/nonexistent.yml"},
		{Config{PrometheusURL: "http://x", HTTPConfigFile: "a.yml", BearerTokenFile: "t"}, "prometheus.http-config.file"},
		{Config{PrometheusURL: "http://x", BasicAuthPasswordFile: "p"}, "prometheus.basic-auth.username"},
		{Config{BearerTokenFile: "t"}, "prometheus.url"},
		{Config{TLSInsecureSkipVerify: true}, "prometheus.url"},
		{Config{BasicAuthPasswordFile: "p"}, "prometheus.url"},
		{Config{TLSServerName: "x"}, "prometheus.url"},
		{Config{}, "storage.path"},
		{Config{Embedded: embedded.Config{StoragePath: t.TempDir(), ConfigFile: "/nonexistent.yml"}}, "/nonexistent.yml"},
		{Config{Embedded: embedded.Config{StoragePath: t.TempDir(), RuleFiles: []string{"/nonexistent/*.yml"}}}, "rules.file"},
		{Config{Embedded: embedded.Config{StoragePath: t.TempDir(), AlertmanagerURL: "am:9093"}}, "alertmanager.url"},
	}
	for _, c := range cases {
		src, err := Open(c.cfg, promslog.NewNopLogger(), prometheus.NewRegistry())
		if err == nil {
			_ = src.Close()
			t.Errorf("%+v accepted", c.cfg)
			continue
		}
		if !strings.Contains(err.Error(), c.flag) {
			t.Errorf("error %q does not name %s", err, c.flag)
		}
	}
}

// TestEmbeddedRefusesUnsupportedSections: a scrape config with sections the
// embedded Prometheus would not honour is refused, not half-applied.
func TestEmbeddedRefusesUnsupportedSections(t *testing.T) {
	for section, body := range map[string]string{
		"alerting.alertmanagers": "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:9093']\n",
		"remote_write":           "remote_write:\n  - url: http://127.0.0.1:9/write\n",
	} {
		dir := t.TempDir()
		file := filepath.Join(dir, "prometheus.yml")
		if err := os.WriteFile(file, []byte("scrape_configs: []\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		src, err := Open(Config{Embedded: embedded.Config{StoragePath: filepath.Join(dir, "data"), ConfigFile: file}}, promslog.NewNopLogger(), prometheus.NewRegistry())
		if err == nil {
			src.Close()
			t.Errorf("%s: accepted", section)
			continue
		}
		if !strings.Contains(err.Error(), section) {
			t.Errorf("%s: error %q does not name the section", section, err)
		}
	}
}

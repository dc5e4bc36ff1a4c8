package identity

import (
	"context"
	"log/slog"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/berth-dev/berth/exporter"
	"github.com/berth-dev/berth/internal/metriclint"
)

func TestValidate(t *testing.T) {
	good := Config{Name: "srv-1", Role: RoleApp, Organization: "acme", DiskUsageThreshold: 0.8}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string // substring naming the flag; empty means valid
	}{
		{"valid app", func(*Config) {}, ""},
		{"valid build without organization", func(c *Config) { c.Role = RoleBuild; c.Organization = "" }, ""},
		{"threshold of exactly 1", func(c *Config) { c.DiskUsageThreshold = 1 }, ""},
		{"unicode name", func(c *Config) { c.Name = "serveur-é" }, ""},
		{"empty name", func(c *Config) { c.Name = "" }, "--server.name"},
		{"blank name", func(c *Config) { c.Name = "  " }, "--server.name"},
		{"padded name", func(c *Config) { c.Name = " srv" }, "--server.name"},
		{"control character in name", func(c *Config) { c.Name = "srv\n1" }, "--server.name"},
		{"invalid utf-8 name", func(c *Config) { c.Name = "srv\xff" }, "--server.name"},
		{"unknown role", func(c *Config) { c.Role = "database" }, "--server.role"},
		{"role in capitals", func(c *Config) { c.Role = "App" }, "--server.role"},
		{"empty role", func(c *Config) { c.Role = "" }, "--server.role"},
		{"padded organization", func(c *Config) { c.Organization = "acme " }, "--server.organization"},
		{"control character in organization", func(c *Config) { c.Organization = "ac\tme" }, "--server.organization"},
		{"threshold zero", func(c *Config) { c.DiskUsageThreshold = 0 }, "--server.disk-usage-threshold"},
		{"threshold negative", func(c *Config) { c.DiskUsageThreshold = -0.5 }, "--server.disk-usage-threshold"},
		{"threshold as percent", func(c *Config) { c.DiskUsageThreshold = 80 }, "--server.disk-usage-threshold"},
		{"threshold just above 1", func(c *Config) { c.DiskUsageThreshold = 1.0000001 }, "--server.disk-usage-threshold"},
		{"threshold NaN", func(c *Config) { c.DiskUsageThreshold = math.NaN() }, "--server.disk-usage-threshold"},
		{"threshold +Inf", func(c *Config) { c.DiskUsageThreshold = math.Inf(1) }, "--server.disk-usage-threshold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mutate(&c)
			err := Validate(c)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v, want nil", c, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want an error naming %s", c, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate(%+v) = %q, want it to name %s", c, err, tt.wantErr)
			}
		})
	}
}

// build parses args the way berth-exporter does and builds the collectors.
func build(t *testing.T, args ...string) (map[string]exporter.Collector, error) {
	t.Helper()
	app := kingpin.New("test", "")
	reg := exporter.NewRegistry(app)
	Register(reg)
	if _, err := app.Parse(args); err != nil {
		return nil, err
	}
	return reg.Build(slog.New(slog.DiscardHandler))
}

func gather(t *testing.T, collectors map[string]exporter.Collector) *prometheus.Registry {
	t.Helper()
	r := prometheus.NewRegistry()
	r.MustRegister(exporter.NewScraper(collectors, slog.New(slog.DiscardHandler)).ForScrape(context.Background()))
	return r
}

func TestRegisterPublishesIdentity(t *testing.T) {
	collectors, err := build(t, "--server.name=build-7", "--server.role=build",
		"--server.organization=acme", "--server.disk-usage-threshold=0.9")
	if err != nil {
		t.Fatal(err)
	}
	want := `
# HELP berth_server_disk_usage_threshold_ratio Disk usage ratio above which this server counts as full (its own threshold, 0 < x <= 1).
# TYPE berth_server_disk_usage_threshold_ratio gauge
berth_server_disk_usage_threshold_ratio 0.9
# HELP berth_server_info Identity of this server in the Berth fleet (always 1): name, role (app or build) and organization.
# TYPE berth_server_info gauge
berth_server_info{organization="acme",role="build",server="build-7"} 1
`
	if err := testutil.GatherAndCompare(gather(t, collectors), strings.NewReader(want),
		"berth_server_info", "berth_server_disk_usage_threshold_ratio"); err != nil {
		t.Fatal(err)
	}
}

func TestRegisterDefaults(t *testing.T) {
	hostname, err := os.Hostname()
	if err != nil || hostname == "" {
		t.Skipf("no hostname on this machine (%v): the default cannot be checked", err)
	}
	collectors, err := build(t)
	if err != nil {
		t.Fatal(err)
	}
	want := `
# HELP berth_server_disk_usage_threshold_ratio Disk usage ratio above which this server counts as full (its own threshold, 0 < x <= 1).
# TYPE berth_server_disk_usage_threshold_ratio gauge
berth_server_disk_usage_threshold_ratio 0.8
# HELP berth_server_info Identity of this server in the Berth fleet (always 1): name, role (app or build) and organization.
# TYPE berth_server_info gauge
berth_server_info{organization="",role="app",server="` + hostname + `"} 1
`
	if err := testutil.GatherAndCompare(gather(t, collectors), strings.NewReader(want),
		"berth_server_info", "berth_server_disk_usage_threshold_ratio"); err != nil {
		t.Fatal(err)
	}
}

func TestRegisterRefusesBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		flag string
	}{
		{[]string{"--server.role=db"}, "--server.role"},
		{[]string{"--server.name="}, "--server.name"},
		{[]string{"--server.disk-usage-threshold=1.5"}, "--server.disk-usage-threshold"},
		{[]string{"--server.disk-usage-threshold=0"}, "--server.disk-usage-threshold"},
		// Not a number at all: kingpin refuses it while parsing.
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := build(t, tt.args...)
			if err == nil {
				t.Fatalf("flags %v accepted, want an error naming %s", tt.args, tt.flag)
			}
			if !strings.Contains(err.Error(), tt.flag) {
				t.Fatalf("flags %v: error %q does not name %s", tt.args, err, tt.flag)
			}
		})
	}
}

// TestLintMetrics runs promlint over the identity metrics: Berth's own names
// must be lint-clean.
func TestLintMetrics(t *testing.T) {
	collectors, err := build(t, "--server.name=srv", "--server.organization=acme")
	if err != nil {
		t.Fatal(err)
	}
	families, err := gather(t, collectors).Gather()
	if err != nil {
		t.Fatal(err)
	}
	var server []*dto.MetricFamily
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "berth_server_") {
			server = append(server, f)
		}
	}
	if len(server) == 0 {
		t.Fatal("no berth_server_ family gathered: nothing to lint")
	}
	metriclint.Families(t, server, nil)
}

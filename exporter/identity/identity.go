// Package identity publishes who this server is in the Berth fleet:
// berth_server_info{server, role, organization} 1 and the server's own disk
// usage threshold. Recording rules join every other signal to
// berth_server_info on instance, so the rest of Berth (rules, placement,
// dashboards) speaks in server names rather than scrape addresses.
package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/berth-dev/berth/exporter"
	"github.com/prometheus/client_golang/prometheus"
)

// Roles a server can have: app servers run deployments, build servers run
// image builds.
const (
	RoleApp   = "app"
	RoleBuild = "build"
)

// DefaultDiskUsageThreshold is Coolify's default per-server disk threshold.
const DefaultDiskUsageThreshold = 0.8

var (
	infoDesc = prometheus.NewDesc("berth_server_info",
		"Identity of this server in the Berth fleet (always 1): name, role (app or build) and organization.",
		[]string{"server", "role", "organization"}, nil)
	thresholdDesc = prometheus.NewDesc("berth_server_disk_usage_threshold_ratio",
		"Disk usage ratio above which this server counts as full (its own threshold, 0 < x <= 1).",
		nil, nil)
)

// Config is a server's identity as given by its flags.
type Config struct {
	// Name is the server's name in the fleet (--server.name).
	Name string
	// Role is RoleApp or RoleBuild (--server.role).
	Role string
	// Organization owns the server; empty when not set (--server.organization).
	Organization string
	// DiskUsageThreshold is in (0, 1] (--server.disk-usage-threshold).
	DiskUsageThreshold float64
}

// Validate checks c and returns an error naming the flag of the first bad
// value.
func Validate(c Config) error {
	switch {
	case strings.TrimSpace(c.Name) == "":
		return errors.New("invalid --server.name: must not be empty (the hostname is the default; set it when the hostname is unknown)")
	case c.Name != strings.TrimSpace(c.Name):
		return fmt.Errorf("invalid --server.name %q: must not start or end with white space", c.Name)
	case !printable(c.Name):
		return fmt.Errorf("invalid --server.name %q: must be valid UTF-8 without control characters", c.Name)
	case c.Role != RoleApp && c.Role != RoleBuild:
		return fmt.Errorf("invalid --server.role %q: must be %q or %q", c.Role, RoleApp, RoleBuild)
	case c.Organization != strings.TrimSpace(c.Organization):
		return fmt.Errorf("invalid --server.organization %q: must not start or end with white space", c.Organization)
	case !printable(c.Organization):
		return fmt.Errorf("invalid --server.organization %q: must be valid UTF-8 without control characters", c.Organization)
	case math.IsNaN(c.DiskUsageThreshold) || c.DiskUsageThreshold <= 0 || c.DiskUsageThreshold > 1:
		return fmt.Errorf("invalid --server.disk-usage-threshold %v: must be greater than 0 and at most 1 (a ratio, e.g. 0.8 for 80%%)", c.DiskUsageThreshold)
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Collector publishes a validated Config.
type Collector struct {
	cfg Config
}

// New validates cfg and returns its collector.
func New(cfg Config) (*Collector, error) {
	if err := Validate(cfg); err != nil {
		return nil, err
	}
	return &Collector{cfg: cfg}, nil
}

// Update implements exporter.Collector.
func (c *Collector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	ch <- prometheus.MustNewConstMetric(infoDesc, prometheus.GaugeValue, 1, c.cfg.Name, c.cfg.Role, c.cfg.Organization)
	ch <- prometheus.MustNewConstMetric(thresholdDesc, prometheus.GaugeValue, c.cfg.DiskUsageThreshold)
	return nil
}

// Register defines the --server.* flags on reg's application and registers
// the "identity" collector (always on). Invalid flag values make
// the collector's factory fail, so the exporter refuses to start and says
// which flag is wrong.
func Register(reg *exporter.Registry) {
	app := reg.App()
	hostname, err := os.Hostname()
	if err != nil {
		hostname = "" // Validate then asks for --server.name explicitly
	}
	cfg := &Config{}
	app.Flag("server.name", "Name of this server in the Berth fleet (label server of berth_server_info).").
		Default(hostname).StringVar(&cfg.Name)
	app.Flag("server.role", "Role of this server: app (runs deployments) or build (runs image builds).").
		Default(RoleApp).StringVar(&cfg.Role)
	app.Flag("server.organization", "Organization that owns this server (optional; label organization of berth_server_info).").
		Default("").StringVar(&cfg.Organization)
	app.Flag("server.disk-usage-threshold", "Disk usage ratio (0 < x <= 1) above which this server counts as full; published as berth_server_disk_usage_threshold_ratio.").
		Default(fmt.Sprint(DefaultDiskUsageThreshold)).Float64Var(&cfg.DiskUsageThreshold)
	reg.Always("identity", func(*slog.Logger) (exporter.Collector, error) {
		return New(*cfg)
	})
}

package system

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/berth-dev/berth/exporter"
	"github.com/berth-dev/berth/internal/metriclint"
	"github.com/berth-dev/berth/internal/testenv"
)

// nodeExporterCollectors are node_exporter's collectors equivalent to ours
// (node_boot_time_seconds comes from its stat collector on Linux).
var nodeExporterCollectors = []string{"cpu", "filesystem", "loadavg", "meminfo", "netdev", "netstat", "pressure", "sockstat", "stat", "uname"}

// startNodeExporter runs Debian's node_exporter 1.5 on a loopback port with
// only the equivalent collectors and the same filters as ours (Debian
// patches the mount point and netdev defaults; upstream's are ours).
func startNodeExporter(t testing.TB) (string, *testenv.Process) {
	t.Helper()
	bin := testenv.LookPath(t, "prometheus-node-exporter", "prometheus-node-exporter")
	addr := testenv.FreePort(t)
	args := []string{
		"--web.listen-address=" + addr,
		"--collector.disable-defaults",
		"--collector.filesystem.mount-points-exclude=" + defaultMountPointsExclude,
		"--collector.filesystem.fs-types-exclude=" + defaultFSTypesExclude,
		"--collector.netdev.device-exclude=",
	}
	for _, c := range nodeExporterCollectors {
		args = append(args, "--collector."+c)
	}
	p := testenv.Start(t, bin, args...)
	url := "http://" + addr + "/metrics"
	testenv.WaitHTTP(t, url, 15*time.Second)
	return url, p
}

// liveCollectors builds our collectors from default flags, on this host.
func liveCollectors(t testing.TB) map[string]exporter.Collector {
	t.Helper()
	app := kingpin.New("test", "")
	reg := exporter.NewRegistry(app)
	Register(reg)
	if _, err := app.Parse(nil); err != nil {
		t.Fatal(err)
	}
	collectors, err := reg.Build(discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	return collectors
}

func fetchFamilies(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return parseText(t, body)
}

func parseText(t testing.TB, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("parsing exposition: %v", err)
	}
	return families
}

func ourFamilies(t testing.TB, collectors map[string]exporter.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	return parseText(t, []byte(scrapeText(t, context.Background(), collectors)))
}

// series maps a label signature (sorted name=value pairs) to the value.
func series(f *dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(labels)
		var v float64
		switch {
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		default:
			v = m.GetUntyped().GetValue()
		}
		out[strings.Join(labels, ",")] = v
	}
	return out
}

func labelValues(f *dto.MetricFamily, name string) []string {
	set := map[string]bool{}
	if f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == name {
					set[l.GetValue()] = true
				}
			}
		}
	}
	var out []string
	for v := range set {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// knownGaps are node_exporter families of the equivalent collectors that
// Berth does not publish, with the reason.
var knownGaps = map[string]string{
	"node_network_receive_nohandler_total":   "netlink-only counter; Berth reads /proc/net/dev",
	"node_context_switches_total":            "stat collector extra; Berth's boottime collector only publishes node_boot_time_seconds",
	"node_forks_total":                       "stat collector extra",
	"node_intr_total":                        "stat collector extra",
	"node_procs_blocked":                     "stat collector extra",
	"node_procs_running":                     "stat collector extra",
	"node_memory_KReclaimable_bytes":         "meminfo key procfs's Meminfo does not know (node_exporter 1.5 exports every key it finds)",
	"node_memory_FilePmdMapped_bytes":        "meminfo key procfs's Meminfo does not know",
	"node_memory_Balloon_bytes":              "meminfo key procfs's Meminfo does not know",
	"node_exporter_build_info":               "node_exporter's own",
	"node_scrape_collector_duration_seconds": "node_exporter's own (Berth: berth_scrape_collector_duration_seconds)",
	"node_scrape_collector_success":          "node_exporter's own (Berth: berth_scrape_collector_success)",
}

// TestIntegrationNodeExporterAgreement compares our collectors with the
// real node_exporter 1.5 on this machine at the same moment.
func TestIntegrationNodeExporterAgreement(t *testing.T) {
	url, _ := startNodeExporter(t)
	collectors := liveCollectors(t)

	// node_exporter, us, node_exporter again: monotonic counters must be
	// sandwiched between the two reference readings.
	before := fetchFamilies(t, url)
	ours := ourFamilies(t, collectors)
	after := fetchFamilies(t, url)

	t.Run("same families, types and help", func(t *testing.T) {
		for name, f := range ours {
			if !strings.HasPrefix(name, "node_") {
				continue
			}
			ref, ok := after[name]
			if !ok {
				// Families that only exist on some hardware/kernels (thermal
				// throttles, isolated CPUs) are absent from both or present
				// in both.
				t.Errorf("we publish %s, node_exporter does not", name)
				continue
			}
			if f.GetType() != ref.GetType() || f.GetHelp() != ref.GetHelp() {
				t.Errorf("%s: ours %s %q, node_exporter %s %q", name, f.GetType(), f.GetHelp(), ref.GetType(), ref.GetHelp())
			}
		}
		for name := range after {
			if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_") {
				continue
			}
			if _, ok := ours[name]; !ok && knownGaps[name] == "" {
				t.Errorf("node_exporter publishes %s, we do not", name)
			}
		}
	})

	t.Run("totals equal", func(t *testing.T) {
		for _, name := range []string{"node_memory_MemTotal_bytes", "node_memory_SwapTotal_bytes", "node_boot_time_seconds"} {
			if g, w := series(ours[name])[""], series(after[name])[""]; g != w || w == 0 && name != "node_memory_SwapTotal_bytes" {
				t.Errorf("%s = %v, node_exporter %v", name, g, w)
			}
		}
		if g, w := labelValues(ours["node_cpu_seconds_total"], "cpu"), labelValues(after["node_cpu_seconds_total"], "cpu"); !equalStrings(g, w) || len(g) == 0 {
			t.Errorf("CPUs: ours %v, node_exporter %v", g, w)
		}
		rootKey := ""
		for k := range series(after["node_filesystem_size_bytes"]) {
			if strings.HasSuffix(k, ",mountpoint=/") {
				rootKey = k
			}
		}
		if rootKey == "" {
			t.Fatalf("node_exporter reports no size for /")
		}
		if g, w := series(ours["node_filesystem_size_bytes"])[rootKey], series(after["node_filesystem_size_bytes"])[rootKey]; g != w {
			t.Errorf("node_filesystem_size_bytes{%s} = %v, node_exporter %v", rootKey, g, w)
		}
		// Every other filesystem both saw at both moments has the same size.
		lo, hi := series(before["node_filesystem_size_bytes"]), series(after["node_filesystem_size_bytes"])
		for k, g := range series(ours["node_filesystem_size_bytes"]) {
			if w, ok := hi[k]; ok && lo[k] == w && g != w {
				t.Errorf("node_filesystem_size_bytes{%s} = %v, node_exporter %v", k, g, w)
			}
		}
		if g, w := series(ours["node_uname_info"]), series(after["node_uname_info"]); !equalKeys(g, w) {
			t.Errorf("node_uname_info labels: ours %v, node_exporter %v", g, w)
		}
	})

	// Other tests on this machine create and remove containers (mounts,
	// veth devices) while this runs: what node_exporter saw both before and
	// after must be in ours, and ours must have been seen by it at least
	// once.
	t.Run("same mount points and network devices", func(t *testing.T) {
		sandwiched(t, "filesystems (device, fstype, mountpoint)",
			keys(series(before["node_filesystem_device_error"])),
			keys(series(ours["node_filesystem_device_error"])),
			keys(series(after["node_filesystem_device_error"])))
		sandwiched(t, "network devices",
			labelValues(before["node_network_receive_bytes_total"], "device"),
			labelValues(ours["node_network_receive_bytes_total"], "device"),
			labelValues(after["node_network_receive_bytes_total"], "device"))
	})

	t.Run("counters between two reference readings", func(t *testing.T) {
		for _, c := range []struct {
			name  string
			slack float64 // the kernel's per-CPU times can wobble back by a tick
		}{
			{"node_cpu_seconds_total", 0.05},
			{"node_cpu_guest_seconds_total", 0.05},
			{"node_network_receive_bytes_total", 0},
			{"node_network_transmit_bytes_total", 0},
			{"node_network_receive_packets_total", 0},
			{"node_network_transmit_packets_total", 0},
			{"node_network_receive_errs_total", 0},
			{"node_network_receive_drop_total", 0},
			{"node_pressure_cpu_waiting_seconds_total", 0},
			{"node_pressure_io_waiting_seconds_total", 0},
			{"node_pressure_memory_waiting_seconds_total", 0},
		} {
			lo, hi, got := series(before[c.name]), series(after[c.name]), series(ours[c.name])
			if len(hi) == 0 && !strings.HasPrefix(c.name, "node_pressure_") {
				t.Errorf("node_exporter has no %s", c.name)
			}
			for k, h := range hi {
				l, inBefore := lo[k]
				g, inOurs := got[k]
				if !inBefore || !inOurs {
					continue // a device that came or went meanwhile
				}
				if g < l-c.slack || g > h+c.slack || math.IsNaN(g) {
					t.Errorf("%s{%s} = %v, want within [%v, %v]", c.name, k, g, l, h)
				}
			}
		}
	})
}

// sandwiched checks before ∩ after ⊆ ours ⊆ before ∪ after, and that the
// set is not empty.
func sandwiched(t *testing.T, what string, before, ours, after []string) {
	t.Helper()
	in := func(list []string) map[string]bool {
		m := map[string]bool{}
		for _, v := range list {
			m[v] = true
		}
		return m
	}
	b, o, a := in(before), in(ours), in(after)
	if len(o) == 0 {
		t.Errorf("%s: we report none", what)
	}
	for v := range b {
		if a[v] && !o[v] {
			t.Errorf("%s: node_exporter reported %q before and after, we did not", what, v)
		}
	}
	for v := range o {
		if !a[v] && !b[v] {
			t.Errorf("%s: we reported %q, node_exporter never did", what, v)
		}
	}
}

func keys(m map[string]float64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func equalKeys(a, b map[string]float64) bool { return equalStrings(keys(a), keys(b)) }

func equalStrings(a, b []string) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// TestIntegrationLintMetrics lints this host's full output of the system
// collectors (and the scrape engine's berth_* metrics) with promlint. The
// only findings allowed are the camelCase names node_exporter itself carries
// (node_memory_MemTotal_bytes, node_netstat_Tcp_CurrEstab…).
func TestIntegrationLintMetrics(t *testing.T) {
	out := scrapeText(t, context.Background(), liveCollectors(t))
	if metriclint.Text(t, strings.NewReader(out), metriclint.NodeExporterCamelCase) == 0 {
		t.Errorf("expected node_exporter's inherited camelCase warnings (node_memory_MemTotal_bytes…), got none: is the lint checking anything?")
	}
}

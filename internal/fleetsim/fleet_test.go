package fleetsim

import (
	"context"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func scrape(t *testing.T, addr string) (map[string]*dto.MetricFamily, int) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scraping %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, resp.StatusCode
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics of %s: %v", addr, err)
	}
	return families, resp.StatusCode
}

func labelsOf(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	default:
		return m.GetUntyped().GetValue()
	}
}

func testSpec() Spec {
	return Spec{Seed: 7, Servers: []ServerSpec{{
		Name: "web-1", Role: "app", Organization: "acme", Cores: 4,
		MemoryBytes: 8 * gib, MemoryUsedBytes: 2 * gib, DiskBytes: 100 * gb, DiskUsedBytes: 40 * gb,
		DiskThreshold: 0.9, CPUBusy: 0.25, Connections: 50,
		Containers: []ContainerSpec{
			{Name: "app-a", Image: "app:1", ApplicationID: "12", Managed: true, Role: "app", CPULimitCores: 1.5, MemoryLimitBytes: 512 << 20, CPUUsageCores: 0.5, MemoryWorkingSetBytes: 100 << 20},
			{Name: "app-b", Image: "app:2", ApplicationID: "13", Managed: true, Role: "app", CPUUsageCores: 0.1, MemoryWorkingSetBytes: 50 << 20},
			{Name: "old", Image: "app:0", Role: "other", State: "exited"},
		},
	}, {
		Name: "build-1", Role: "build", Cores: 2, MemoryBytes: 4 * gib, DiskBytes: 50 * gb, CPUBusy: 0.5,
		Containers: []ContainerSpec{{Name: "abcdefghijklmnopqrstuvwx", Image: "ghcr.io/coollabsio/coolify-helper:1", Role: "build", CPUUsageCores: 1}},
	}}}
}

func TestFleetLooksLikeBerthExporter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fleet, err := Start(ctx, testSpec(), ListenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()

	web := fleet.Server("web-1")
	fams, code := scrape(t, web.Address())
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	info := fams["berth_server_info"].GetMetric()
	if len(info) != 1 || !reflect.DeepEqual(labelsOf(info[0]), map[string]string{"server": "web-1", "role": "app", "organization": "acme"}) {
		t.Errorf("berth_server_info = %v", info)
	}
	if got := value(fams["berth_server_disk_usage_threshold_ratio"].GetMetric()[0]); got != 0.9 {
		t.Errorf("threshold = %v, want 0.9", got)
	}
	if got := len(fams["node_cpu_seconds_total"].GetMetric()); got != 4*len(cpuModes) {
		t.Errorf("node_cpu_seconds_total has %d series, want %d", got, 4*len(cpuModes))
	}
	if got := value(fams["node_memory_MemTotal_bytes"].GetMetric()[0]); got != 8*gib {
		t.Errorf("MemTotal = %v", got)
	}
	avail := value(fams["node_memory_MemAvailable_bytes"].GetMetric()[0])
	if used := 8*gib - avail; used < 2*gib*0.84 || used > 2*gib*1.16 {
		t.Errorf("memory used = %v, want 2 GiB ± 15 %%", used)
	}
	var rootSize, rootAvail float64
	for _, m := range fams["node_filesystem_size_bytes"].GetMetric() {
		if l := labelsOf(m); l["mountpoint"] == "/" && l["fstype"] == "ext4" && l["device"] == "/dev/vda1" {
			rootSize = value(m)
		}
	}
	for _, m := range fams["node_filesystem_avail_bytes"].GetMetric() {
		if labelsOf(m)["mountpoint"] == "/" {
			rootAvail = value(m)
		}
	}
	if rootSize != 100*gb || rootAvail != 60*gb {
		t.Errorf("root fs size/avail = %v/%v, want 100e9/60e9", rootSize, rootAvail)
	}

	wantLabels := []string{"id", "name", "image", "application_id", "service_id", "database_id", "resource_type", "project", "environment", "pull_request", "managed", "role"}
	infos := fams["berth_container_info"].GetMetric()
	if len(infos) != 3 {
		t.Fatalf("berth_container_info has %d series, want 3 (stopped ones included)", len(infos))
	}
	for _, m := range infos {
		l := labelsOf(m)
		for _, name := range append(wantLabels, "state") {
			if _, ok := l[name]; !ok && name != "service_id" && name != "database_id" && name != "resource_type" && name != "project" && name != "environment" && name != "pull_request" {
				t.Errorf("berth_container_info %v lacks label %s", l, name)
			}
		}
	}
	quotas := fams["container_spec_cpu_quota"].GetMetric()
	if len(quotas) != 1 || labelsOf(quotas[0])["name"] != "app-a" || value(quotas[0]) != 150000 {
		t.Errorf("container_spec_cpu_quota = %v, want only app-a with 150000", quotas)
	}
	limits := map[string]float64{}
	for _, m := range fams["container_spec_memory_limit_bytes"].GetMetric() {
		limits[labelsOf(m)["name"]] = value(m)
	}
	if !reflect.DeepEqual(limits, map[string]float64{"app-a": 512 << 20, "app-b": 0}) {
		t.Errorf("memory limits = %v (exited containers have none, unlimited is 0)", limits)
	}
	if got := value(fams["berth_builds_active"].GetMetric()[0]); got != 0 {
		t.Errorf("web-1 berth_builds_active = %v, want 0", got)
	}
	bfams, _ := scrape(t, fleet.Server("build-1").Address())
	if got := value(bfams["berth_builds_active"].GetMetric()[0]); got != 1 {
		t.Errorf("build-1 berth_builds_active = %v, want 1", got)
	}

	// Counters grow between scrapes.
	cpuBefore := sumFamily(fams["node_cpu_seconds_total"])
	time.Sleep(50 * time.Millisecond)
	fams2, _ := scrape(t, web.Address())
	if after := sumFamily(fams2["node_cpu_seconds_total"]); after <= cpuBefore {
		t.Errorf("node_cpu_seconds_total did not grow: %v → %v", cpuBefore, after)
	}

	// Stale on demand, back again, and live changes.
	web.SetAnswering(false)
	if _, code := scrape(t, web.Address()); code != http.StatusServiceUnavailable {
		t.Errorf("stale server answered %d, want 503", code)
	}
	web.SetAnswering(true)
	if err := web.Update(func(s *ServerSpec) { s.MemoryBytes = 16 * gib; s.Cores = 8 }); err != nil {
		t.Fatal(err)
	}
	fams3, _ := scrape(t, web.Address())
	if got := value(fams3["node_memory_MemTotal_bytes"].GetMetric()[0]); got != 16*gib {
		t.Errorf("MemTotal after update = %v", got)
	}
	if got := len(fams3["node_cpu_seconds_total"].GetMetric()); got != 8*len(cpuModes) {
		t.Errorf("cpu series after update = %d", got)
	}
	if err := web.Update(func(s *ServerSpec) { s.Cores = 0 }); err == nil || !strings.Contains(err.Error(), "cores") {
		t.Errorf("bad update error = %v, want one naming cores", err)
	}
}

func sumFamily(f *dto.MetricFamily) float64 {
	var s float64
	for _, m := range f.GetMetric() {
		s += value(m)
	}
	return s
}

func TestGenerateIsDeterministic(t *testing.T) {
	o := GenerateOptions{Servers: 20, BuildServers: 3, Organizations: 2, Seed: 42}
	a, err := Generate(o)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate(o)
	if !reflect.DeepEqual(a, b) {
		t.Error("same options gave different specs")
	}
	o.Seed = 43
	c, _ := Generate(o)
	if reflect.DeepEqual(a, c) {
		t.Error("different seeds gave the same spec")
	}
	builds := 0
	for _, s := range a.Servers {
		if s.Role == "build" {
			builds++
		}
	}
	if builds != 3 {
		t.Errorf("%d build servers, want 3", builds)
	}
}

func TestValidateNamesField(t *testing.T) {
	cases := []struct {
		change func(*Spec)
		field  string
	}{
		{func(s *Spec) { s.Servers[0].Name = "" }, "servers[0].name"},
		{func(s *Spec) { s.Servers[1].Name = "web-1" }, "servers[1].name"},
		{func(s *Spec) { s.Servers[0].Role = "db" }, "servers[0].role"},
		{func(s *Spec) { s.Servers[0].DiskUsedBytes = 1e15 }, "servers[0].disk_used_bytes"},
		{func(s *Spec) { s.Servers[0].CPUBusy = 2 }, "servers[0].cpu_busy"},
		{func(s *Spec) { s.Servers[0].Containers[1].Role = "x" }, "servers[0].containers[1].role"},
		{func(s *Spec) { s.Servers[0].Containers[0].CPULimitCores = -1 }, "servers[0].containers[0].resources"},
	}
	for _, c := range cases {
		s := testSpec()
		c.change(&s)
		err := s.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), c.field+":") {
			t.Errorf("error %v, want one starting with %s", err, c.field)
		}
	}
	if _, err := Generate(GenerateOptions{Servers: 2, BuildServers: 3}); err == nil {
		t.Error("more build servers than servers accepted")
	}
}

package quota

import (
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/policy"

	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/berth-dev/berth/internal/placementtest"
	"github.com/berth-dev/berth/internal/testenv"
)

type staticSnapshots struct {
	snap *placement.Snapshot
	err  error
}

func (s staticSnapshots) Snapshot(context.Context) (*placement.Snapshot, error) { return s.snap, s.err }

// quotaMetricsSetup: acme (2 servers, 2 applications, 2.5 cores, 4 GiB, plus
// a reservation of 1 core / 1 GiB for a new application) limited to 1
// server, 3 applications and 4 GiB; globex unlimited; trial limited to 0
// applications and nothing running.
func quotaMetricsSetup(t *testing.T, snapErr error) *Collector {
	p := quotaPolicy(t, "    acme: {max_servers: 1, max_applications: 3, max_memory_gb: 4}\n    trial: {max_applications: 0}\n")
	open := []placement.Reservation{{Kind: placement.KindDeployment, Server: "s1", Organization: "acme", ApplicationID: "13", Resources: placement.Resources{CPU: 1, Memory: 1 * placementtest.GiB}}}
	return NewCollector(staticSnapshots{snap: quotaFleet(), err: snapErr}, policy.NewStaticStore(p),
		func() []placement.Reservation { return open }, nil)
}

const quotaLimitsExposition = `# HELP berth_organization_quota_limit Organization quota limit per resource (servers, applications, cpu_cores, memory_bytes); absent when unlimited, 0 allows none.
# TYPE berth_organization_quota_limit gauge
berth_organization_quota_limit{organization="acme",resource="applications"} 3
berth_organization_quota_limit{organization="acme",resource="memory_bytes"} 4.294967296e+09
berth_organization_quota_limit{organization="acme",resource="servers"} 1
berth_organization_quota_limit{organization="trial",resource="applications"} 0
`

func TestQuotaCollector(t *testing.T) {
	c := quotaMetricsSetup(t, nil)
	want := quotaLimitsExposition + `# HELP berth_organization_usage Organization usage per resource as quota checks count it: servers, distinct applications, allocated CPU cores and memory bytes of managed containers (unlimited ones at the policy's default request) plus open deployment reservations.
# TYPE berth_organization_usage gauge
berth_organization_usage{organization="acme",resource="applications"} 3
berth_organization_usage{organization="acme",resource="cpu_cores"} 3.5
berth_organization_usage{organization="acme",resource="memory_bytes"} 5.36870912e+09
berth_organization_usage{organization="acme",resource="servers"} 2
berth_organization_usage{organization="globex",resource="applications"} 0
berth_organization_usage{organization="globex",resource="cpu_cores"} 0
berth_organization_usage{organization="globex",resource="memory_bytes"} 0
berth_organization_usage{organization="globex",resource="servers"} 1
berth_organization_usage{organization="trial",resource="applications"} 0
berth_organization_usage{organization="trial",resource="cpu_cores"} 0
berth_organization_usage{organization="trial",resource="memory_bytes"} 0
berth_organization_usage{organization="trial",resource="servers"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if n, err := testutil.CollectAndLint(c); err != nil || len(n) > 0 {
		t.Errorf("lint: %v %v", n, err)
	}
}

func TestQuotaCollectorWithoutFleet(t *testing.T) {
	// Prometheus down: limits (from the policy) still, no usage.
	c := quotaMetricsSetup(t, errors.New("connection refused"))
	if err := testutil.CollectAndCompare(c, strings.NewReader(quotaLimitsExposition)); err != nil {
		t.Error(err)
	}
}

// TestIntegrationQuotaAlertFires feeds what the collector exports, as is,
// to promtool with the shipped alerting rules: BerthOrganizationOverQuota
// must fire on the dimensions over their limit (acme's servers and
// memory) and on nothing else, so the metric and label names the
// collector exports are the ones the alert reads.
func TestIntegrationQuotaAlertFires(t *testing.T) {
	promtool := testenv.LookPath(t, "promtool", "prometheus")
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(quotaMetricsSetup(t, nil))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var series []string
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			slices.Sort(labels)
			series = append(series, fmt.Sprintf("      - series: '%s{instance=\"127.0.0.1:9831\",job=\"berth-placement\",%s}'\n        values: '%gx30'\n",
				f.GetName(), strings.Join(labels, ","), m.GetGauge().GetValue()))
		}
	}
	if len(series) < 10 {
		t.Fatalf("only %d series gathered", len(series))
	}
	alert := func(resource, summary, description string) string {
		return fmt.Sprintf(`          - exp_labels: {severity: warning, organization: acme, resource: %s}
            exp_annotations:
              summary: %q
              description: %q
              runbook_url: "https://github.com/berth-dev/berth/blob/main/docs/rules.md#berthorganizationoverquota"
`, resource, summary, description)
	}
	test := `rule_files:
  - ` + filepath.Join(testenv.RepoRoot(), "rules", "alerts.rules.yml") + `
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
` + strings.Join(series, "") + `    alert_rule_test:
      - eval_time: 3m
        alertname: BerthOrganizationOverQuota
        exp_alerts: []
      - eval_time: 10m
        alertname: BerthOrganizationOverQuota
        exp_alerts:
` + alert("memory_bytes", "Organization acme is over its memory_bytes quota", "Organization acme uses 5GiB of memory_bytes, over its quota of 4GiB.") +
		alert("servers", "Organization acme is over its servers quota", "Organization acme uses 2 of servers, over its quota of 1.")
	path := filepath.Join(t.TempDir(), "quota_test.yml")
	if err := os.WriteFile(path, []byte(test), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "test", "rules", path).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s\ntest file:\n%s", err, out, test)
	}
}

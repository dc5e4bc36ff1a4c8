package dashboards

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/berth-dev/berth/internal/testenv"
)

// TestIntegrationQueriesParseWithPrometheus2 feeds every dashboard query,
// variables substituted, to the promtool of Prometheus 2.42 (Debian) as a
// recording rule: users on Prometheus 2.x get the same dashboards, and a
// query using PromQL newer than 2.42 fails here.
func TestIntegrationQueriesParseWithPrometheus2(t *testing.T) {
	promtool := testenv.LookPath(t, "promtool", "prometheus")
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	where := map[string]query{}
	for _, d := range loadDashboards(t) {
		values := staticValues(d)
		for _, q := range d.queries() {
			expr, err := substitute(q.Expr, values)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			name := fmt.Sprintf("dashboard:query%d:test", len(rules))
			where[name] = q
			rules = append(rules, rule{Record: name, Expr: expr})
		}
	}
	doc := map[string]any{"groups": []any{map[string]any{"name": "dashboards", "rules": rules}}}
	raw, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboards.rules.yml")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	if err != nil {
		msg := string(out)
		for name, q := range where {
			msg = strings.ReplaceAll(msg, name, name+" ("+q.String()+")")
		}
		t.Fatalf("%s check rules: %v\n%s", promtool, err, msg)
	}
	if !strings.Contains(string(out), fmt.Sprintf("%d rules found", len(rules))) {
		t.Fatalf("promtool did not check the %d queries:\n%s", len(rules), out)
	}
}

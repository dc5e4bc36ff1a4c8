package rules

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/berth-dev/berth/internal/testenv"
)

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type unitTestFile struct {
	RuleFiles      []string `yaml:"rule_files"`
	GroupEvalOrder []string `yaml:"group_eval_order"`
	Tests          []struct {
		PromQLExprTest []struct {
			Expr string `yaml:"expr"`
		} `yaml:"promql_expr_test"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// shipped is what the rule files define.
type shipped struct {
	records []string
	alerts  map[string]ruleFileAlert
	groups  []string
	files   []string // base names
}

type ruleFileAlert struct {
	labels      map[string]string
	annotations map[string]string
}

func loadShipped(t *testing.T) shipped {
	t.Helper()
	s := shipped{alerts: map[string]ruleFileAlert{}}
	for _, path := range ruleFiles(t) {
		var rf ruleFile
		readYAML(t, path, &rf)
		s.files = append(s.files, filepath.Base(path))
		for _, g := range rf.Groups {
			s.groups = append(s.groups, g.Name)
			for _, r := range g.Rules {
				switch {
				case r.Record != "":
					s.records = append(s.records, r.Record)
				case r.Alert != "":
					if _, dup := s.alerts[r.Alert]; dup {
						t.Errorf("alert %s is defined twice", r.Alert)
					}
					s.alerts[r.Alert] = ruleFileAlert{labels: r.Labels, annotations: r.Annotations}
				}
			}
		}
	}
	return s
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
}

// TestRulesEmbedded checks that Files, which berth-placement loads in
// embedded mode, holds exactly the rule files of this directory.
func TestRulesEmbedded(t *testing.T) {
	embedded, err := fs.Glob(Files, "*.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	s := loadShipped(t)
	sort.Strings(embedded)
	sort.Strings(s.files)
	if !slices.Equal(embedded, s.files) {
		t.Fatalf("embedded rule files %v, directory has %v", embedded, s.files)
	}
}

// recordingRuleName matches the level:metric:operations names of the
// contract tables.
var recordingRuleName = regexp.MustCompile("^`([a-z_]+:[A-Za-z0-9_]+:[A-Za-z0-9_]+)`$")

// TestRulesContract checks that docs/recording-rules.md (what placement and
// dashboards are written against) lists exactly the recording rules shipped.
func TestRulesContract(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "docs", "recording-rules.md"))
	if err != nil {
		t.Fatalf("reading the contract: %v", err)
	}
	var documented []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		firstCell := strings.Split(line, "|")[1]
		for _, name := range strings.Split(firstCell, ",") {
			if m := recordingRuleName.FindStringSubmatch(strings.TrimSpace(name)); m != nil {
				documented = append(documented, m[1])
			}
		}
	}
	s := loadShipped(t)
	for _, name := range s.records {
		if !slices.Contains(documented, name) {
			t.Errorf("recording rule %s is not in docs/recording-rules.md", name)
		}
	}
	for _, name := range documented {
		if !slices.Contains(s.records, name) {
			t.Errorf("docs/recording-rules.md lists %s, which no rule file records", name)
		}
	}
}

// TestRulesCoverage checks that the promtool tests cover every recording
// rule (an expression test naming it) and every alert (a case where it
// fires and one where it stays silent), that alerts carry what receivers and
// the runbook need, and that every test file orders all groups.
func TestRulesCoverage(t *testing.T) {
	s := loadShipped(t)
	tested := map[string]bool{}
	fires := map[string]bool{}
	silent := map[string]bool{}
	for _, path := range testFiles(t) {
		var tf unitTestFile
		readYAML(t, path, &tf)
		var ruleFileNames []string
		for _, rf := range tf.RuleFiles {
			ruleFileNames = append(ruleFileNames, filepath.Base(rf))
		}
		sort.Strings(ruleFileNames)
		if !slices.Equal(ruleFileNames, s.files) {
			t.Errorf("%s loads %v, want every rule file %v", filepath.Base(path), ruleFileNames, s.files)
		}
		for _, g := range s.groups {
			if !slices.Contains(tf.GroupEvalOrder, g) {
				t.Errorf("%s: group_eval_order misses group %s", filepath.Base(path), g)
			}
		}
		for _, tc := range tf.Tests {
			for _, e := range tc.PromQLExprTest {
				for _, r := range s.records {
					if regexp.MustCompile(`(^|[^A-Za-z0-9_:])` + regexp.QuoteMeta(r) + `($|[^A-Za-z0-9_:])`).MatchString(e.Expr) {
						tested[r] = true
					}
				}
			}
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) == 0 {
					silent[a.Alertname] = true
					continue
				}
				fires[a.Alertname] = true
				for _, exp := range a.ExpAlerts {
					if exp.ExpAnnotations["description"] == "" {
						t.Errorf("%s: a firing case of %s does not check the description", filepath.Base(path), a.Alertname)
					}
				}
			}
		}
	}
	for _, r := range s.records {
		if !tested[r] {
			t.Errorf("recording rule %s has no promql_expr_test", r)
		}
	}

	runbook, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "docs", "rules.md"))
	if err != nil {
		t.Fatalf("reading the runbook: %v", err)
	}
	for name, a := range s.alerts {
		if !fires[name] {
			t.Errorf("alert %s has no test where it fires", name)
		}
		if !silent[name] {
			t.Errorf("alert %s has no test where it stays silent", name)
		}
		if sev := a.labels["severity"]; sev != "warning" && sev != "critical" {
			t.Errorf("alert %s: severity %q, want warning or critical", name, sev)
		}
		for _, key := range []string{"summary", "description", "runbook_url"} {
			if a.annotations[key] == "" {
				t.Errorf("alert %s has no %s annotation", name, key)
			}
		}
		if want := "docs/rules.md#" + strings.ToLower(name); !strings.HasSuffix(a.annotations["runbook_url"], want) {
			t.Errorf("alert %s: runbook_url %q does not end in %s", name, a.annotations["runbook_url"], want)
		}
		if !strings.Contains(string(runbook), "\n### "+name+"\n") {
			t.Errorf("docs/rules.md has no runbook section \"### %s\"", name)
		}
	}
}

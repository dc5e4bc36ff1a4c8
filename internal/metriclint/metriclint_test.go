package metriclint

import (
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps what the lint reported.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, format)
}

func TestTextReportsAndAllows(t *testing.T) {
	const exposition = `# HELP node_memory_MemTotal_bytes Memory.
# TYPE node_memory_MemTotal_bytes gauge
node_memory_MemTotal_bytes 1
# HELP berth_thing_total A counter without the suffix rule broken.
# TYPE berth_thing_total counter
berth_thing_total 1
# HELP berth_bad A counter without _total.
# TYPE berth_bad counter
berth_bad 1
`
	r := &recorder{TB: t}
	allowed := Text(r, strings.NewReader(exposition), NodeExporterCamelCase)
	if allowed != 1 {
		t.Errorf("allowed %d findings, want 1 (node_memory_MemTotal_bytes)", allowed)
	}
	if len(r.errors) != 1 {
		t.Errorf("reported %d findings, want 1 (berth_bad without _total): %v", len(r.errors), r.errors)
	}

	r = &recorder{TB: t}
	if allowed := Text(r, strings.NewReader(exposition), nil); allowed != 0 || len(r.errors) != 2 {
		t.Errorf("nil allow: allowed %d, reported %d; want 0 and 2", allowed, len(r.errors))
	}
}

func TestCamelCaseOnlyForInheritedNames(t *testing.T) {
	p := Problem{Metric: "berth_memTotal_bytes", Text: "metric names should be written in 'snake_case' not 'camelCase'"}
	if NodeExporterCamelCase(p) {
		t.Errorf("a berth_ name in camelCase must not be allowed")
	}
}

// Package metriclint lints metric expositions inside tests with
// client_golang's promlint, the library `promtool check metrics` is built
// on. It runs in process: no tool to build, no output of another program to
// read as findings.
package metriclint

import (
	"io"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
)

// Problem is one lint finding: the metric family and what is wrong with it.
type Problem = promlint.Problem

// Allow decides whether a finding is expected (for example a name inherited
// from node_exporter). Nil allows nothing.
type Allow func(Problem) bool

// inheritedCamelCase matches node_exporter's names taken from /proc field
// names (node_memory_MemTotal_bytes, node_netstat_Tcp_CurrEstab, …), which
// Berth keeps for compatibility.
var inheritedCamelCase = regexp.MustCompile(`^node_(memory|netstat|vmstat|sockstat|snmp)_`)

// NodeExporterCamelCase allows the camelCase warnings that node_exporter's
// own metric names carry, and nothing else.
func NodeExporterCamelCase(p Problem) bool {
	return p.Text == "metric names should be written in 'snake_case' not 'camelCase'" &&
		inheritedCamelCase.MatchString(p.Metric)
}

// Text lints a text exposition. It fails the test on a parse error and on
// every finding that allow does not accept, and returns how many findings
// allow accepted.
func Text(t testing.TB, r io.Reader, allow Allow) int {
	t.Helper()
	return report(t, promlint.New(r), allow)
}

// Families lints gathered metric families, as Text does.
func Families(t testing.TB, mfs []*dto.MetricFamily, allow Allow) int {
	t.Helper()
	return report(t, promlint.NewWithMetricFamilies(mfs), allow)
}

func report(t testing.TB, l *promlint.Linter, allow Allow) int {
	t.Helper()
	problems, err := l.Lint()
	if err != nil {
		t.Fatalf("metric lint: parsing the exposition: %v", err)
	}
	allowed := 0
	for _, p := range problems {
		if allow != nil && allow(p) {
			allowed++
			continue
		}
		t.Errorf("metric lint: %s %s", p.Metric, p.Text)
	}
	return allowed
}

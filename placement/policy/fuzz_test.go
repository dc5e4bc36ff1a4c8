package policy

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/berth-dev/berth/internal/testenv"
)

// maxFuzzDocument bounds fuzzed documents: longer ones reach no code
// shorter ones do not, and the fuzzer spends minutes minimising them.
const maxFuzzDocument = 1 << 10

// FuzzParsePolicy: whatever the file, ParsePolicy never panics; it gives
// a valid policy or an error, never both nor neither. Seeded with the
// embedded defaults (section by section, without comments, to stay under
// maxFuzzDocument), the README's policy examples and the test fixtures.
func FuzzParse(f *testing.F) {
	for _, s := range defaultPolicySections(f) {
		f.Add([]byte(s))
	}
	for _, s := range readmePolicyExamples(f) {
		f.Add([]byte(s))
	}
	for _, tc := range policyErrorCases {
		f.Add([]byte(tc.in))
	}
	for _, s := range []string{
		"", "# only a comment\n", "---\n", "null", "{}\n", "fit: {max_utilisation: {memory: 0.8}}\n",
		"scoring:\n  strategy: pack\nquotas:\n  organizations:\n    acme: {max_servers: 3, max_memory_gb: 32}\n",
		"a: &a {x: 1}\nb: *a\n", "fit: &f {default_disk_threshold: 0.7}\nscoring: *f\n", "builds:\n  profiles:\n    x: &p {cpu_percent: 10, memory: 1g, duration: 1m}\n    y: *p\n",
		"<<: {fit: {}}\n", "? fit\n: {}\n", "builds: {tie_tolerance: 2}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzDocument {
			return
		}
		p, err := Parse(data)
		if (p == nil) == (err == nil) {
			t.Fatalf("Parse(%q) = %v, %v: want a policy or an error", data, p, err)
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("Parse(%q): empty error", data)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("Parse(%q) accepted an invalid policy: %v", data, err)
		}
	})
}

// defaultPolicySections are policy_default.yml's top-level sections, each
// a policy of its own, comment lines left out.
func defaultPolicySections(tb testing.TB) []string {
	var out []string
	for _, line := range strings.SplitAfter(string(defaultPolicyYAML), "\n") {
		switch t := strings.TrimSpace(line); {
		case t == "" || strings.HasPrefix(t, "#"):
		case line[0] != ' ':
			out = append(out, line)
		case len(out) > 0:
			out[len(out)-1] += line
		}
	}
	for _, s := range out {
		if len(s) > maxFuzzDocument {
			tb.Fatalf("section of policy_default.yml longer than %d bytes:\n%s", maxFuzzDocument, s)
		}
		if _, err := Parse([]byte(s)); err != nil {
			tb.Fatalf("section of policy_default.yml refused: %v\n%s", err, s)
		}
	}
	if len(out) != reflect.TypeFor[Policy]().NumField() {
		tb.Fatalf("%d sections in policy_default.yml, want one per Policy field", len(out))
	}
	return out
}

// readmePolicyExamples are the YAML examples of the README and docs/ that
// are placement policies (a top-level key of the policy).
func readmePolicyExamples(tb testing.TB) []string {
	var data []byte
	root := testenv.RepoRoot()
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*", "*.md"))
	for _, path := range append([]string{filepath.Join(root, "README.md")}, docs...) {
		b, err := os.ReadFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		data = append(data, b...)
	}
	var out []string
	for _, block := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(data, -1) {
		var top map[string]any
		if yaml.Unmarshal(block[1], &top) != nil {
			continue
		}
		for k := range top {
			if _, ok := fieldByYAMLName(reflect.TypeFor[Policy](), k); ok {
				out = append(out, string(block[1]))
				break
			}
		}
	}
	if len(out) < 2 {
		tb.Fatalf("found %d policy examples in the README, want at least 2", len(out))
	}
	for _, s := range out {
		if len(s) > maxFuzzDocument {
			tb.Fatalf("README policy example longer than %d bytes:\n%s", maxFuzzDocument, s)
		}
	}
	return out
}

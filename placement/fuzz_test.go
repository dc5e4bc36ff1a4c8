package placement

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Fuzz targets for what placement reads from outside: quantities (HTTP
// JSON, policy YAML) and the policy file. `go test` runs their seeds as
// regression tests, with any crasher kept under testdata/fuzz/; `go test
// -fuzz FuzzX` (make fuzz) looks for more. Nothing may panic, and what is
// accepted must be in range and read the same whichever form it came in.

// Inputs longer than these are skipped: they reach no code shorter ones
// do not (the seeds hold the long-number cases), and the fuzzer spends
// minutes minimising each long input it finds interesting.
const (
	maxFuzzQuantity = 256
	maxFuzzDocument = 1 << 10
)

// quantitySeeds are the README's examples and the shapes the tests probe.
var quantitySeeds = []string{
	// cpu
	"1", "1.5", "2", ".5", "2.", "0", "0.25", "0.000000001", "1000", "100000", "100001",
	"1.0000000001", "500m", "-1", "-0", "+1", "NaN", "Inf", "1e3", "1E-7", "0x10", "1.2.3", ".", "1 core",
	// memory, disk
	"536870912", "512m", "512M", "512mb", "512MB", "512Mi", "512MiB", "512 MiB", "512 m", "2 GiB", "1g", "1.5g",
	"1024b", "1k", "0.5k", "2t", "1p", "1024p", "1025p", "1Ki", "1x", "1kk", "1bi", "1ib", "1  m", "m",
	"1e9", "1E+9", "1.5e3k", "1..2k", "9999999999p", "12 parsecs",
	// surrounding space, the empty string
	" 1", "1 ", " 2 ", "1\n", "\t1g", "512m ", "",
}

// FuzzParseBytes: no input panics; an accepted value is in range, reads
// back from its String form, and is what the same text gives as a JSON
// string, as a JSON number (when it is one) and as a YAML scalar.
func FuzzParseBytes(f *testing.F) {
	fuzzQuantity(f, ParseBytes, func(b Bytes) bool { return b >= 0 && b <= MaxBytes })
}

// FuzzParseCores: as FuzzParseBytes, for cores.
func FuzzParseCores(f *testing.F) {
	fuzzQuantity(f, ParseCores, func(c Cores) bool { return c >= 0 && c <= MaxCores })
}

// fuzzQuantity runs FuzzParseBytes and FuzzParseCores: parse is the
// quantity's parser, inRange says whether a parsed value is (NaN is not).
func fuzzQuantity[T comparable](f *testing.F, parse func(string) (T, error), inRange func(T) bool) {
	for _, s := range quantitySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > maxFuzzQuantity {
			return
		}
		v, err := parse(s)
		if err == nil {
			if !inRange(v) {
				t.Fatalf("%q parses to %v, out of range", s, v)
			}
			if strings.TrimSpace(s) != s {
				t.Fatalf("%q accepted with surrounding space", s)
			}
			text := fmt.Sprint(v)
			if back, err := parse(text); err != nil || back != v {
				t.Fatalf("%q parses to %v; its String %q parses to %v, %v", s, v, text, back, err)
			}
		}
		sameAsParsed(t, s, v, err, func(data []byte) (T, error) {
			var got T
			err := json.Unmarshal(data, &got)
			return got, err
		}, func(n *yaml.Node) (T, error) {
			var got T
			err := any(&got).(yaml.Unmarshaler).UnmarshalYAML(n)
			return got, err
		})
	})
}

// jsonNumber is a JSON number literal.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// sameAsParsed checks one rule for every form: s as a JSON string, as a
// JSON number (when s is a number literal) and as a YAML scalar of any tag
// gives what parsing s gave (want, wantErr).
func sameAsParsed[T comparable](t *testing.T, s string, want T, wantErr error, fromJSON func([]byte) (T, error), fromYAML func(*yaml.Node) (T, error)) {
	t.Helper()
	check := func(form string, got T, err error) {
		t.Helper()
		if (err == nil) != (wantErr == nil) || err == nil && got != want {
			t.Fatalf("%q as %s = %v, %v; parsed as a string: %v, %v", s, form, got, err, want, wantErr)
		}
	}
	if utf8.ValidString(s) { // else no JSON string holds it as is
		quoted, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fromJSON(quoted)
		check("a JSON string", got, err)
	}
	if jsonNumber.MatchString(s) {
		got, err := fromJSON([]byte(s))
		check("a JSON number", got, err)
	}
	for _, tag := range []string{"!!str", "!!int", "!!float"} {
		got, err := fromYAML(&yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: s})
		check("a YAML "+tag, got, err)
	}
}

// FuzzQuantityJSON: whatever the JSON, decoding resources, cores or bytes
// never panics; accepted amounts are in range; a bad one names its field.
func FuzzQuantityJSON(f *testing.F) {
	for _, s := range []string{
		`{"cpu": 1.5, "memory": "512m", "disk": "1g"}`, `{"cpu": "2", "memory": 1073741824}`, `{"cpu": null}`, `{}`,
		`{"cpu": "0.5", "memory": "1g"}`, `{"cpu": "2", "memory": "3g", "disk": "10g"}`, `{"memory": "1.5 GiB"}`,
		`{"cpu": 1.0000000001}`, `{"cpu": "1.0000000001"}`, `{"memory": 1e9}`, `{"cpu": -0}`, `{"cpu": " 1"}`,
		`{"cpu": 1e400}`, `{"disk": true}`, `{"cpu": [1]}`, `{"gpu": 1}`, `[1]`, `{`, `1.5`, `"512m"`, `null`,
		`{"cpu": 1, "cpu": "x"}`, `{"memory": "\u0031g"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzDocument {
			return
		}
		var r Resources
		if err := json.Unmarshal(data, &r); err == nil {
			if r.CPU < 0 || r.CPU > MaxCores || r.Memory < 0 || r.Memory > MaxBytes || r.Disk < 0 || r.Disk > MaxBytes {
				t.Fatalf("%q decoded to %+v, out of range", data, r)
			}
		} else if fe := (*FieldError)(nil); errors.As(err, &fe) && fe.Field == "" {
			t.Fatalf("%q: field error without a field: %v", data, err)
		}
		var c Cores
		if err := json.Unmarshal(data, &c); err == nil && (c < 0 || c > MaxCores) {
			t.Fatalf("%q decoded to %v cores, out of range", data, c)
		}
		var b Bytes
		if err := json.Unmarshal(data, &b); err == nil && (b < 0 || b > MaxBytes) {
			t.Fatalf("%q decoded to %d bytes, out of range", data, b)
		}
	})
}

// FuzzQuantityYAML: whatever the YAML, decoding cores and bytes never
// panics; accepted amounts are in range and are what ParseCores and
// ParseBytes give for the scalar's text.
func FuzzQuantityYAML(f *testing.F) {
	for _, s := range []string{
		"cpu: 0.5\nmem: 512Mi\n", "cpu: \"1.5\"\nmem: 1024\n", "cpu: 1.0000000001\n", "cpu: \" 1\"\n", "cpu: 0x10\n",
		"cpu: .inf\n", "mem: 1e9\n", "mem: \"1024 \"\n", "cpu: [1]\n", "cpu: {a: 1}\n", "cpu: ~\n", "cpu: &a 1\nmem: *a\n",
		"cpu: !!binary aGk=\n", "mem: 12 parsecs\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > maxFuzzDocument {
			return
		}
		var doc struct {
			CPU Cores `yaml:"cpu"`
			Mem Bytes `yaml:"mem"`
		}
		if err := yaml.Unmarshal([]byte(s), &doc); err == nil {
			if doc.CPU < 0 || doc.CPU > MaxCores || doc.Mem < 0 || doc.Mem > MaxBytes {
				t.Fatalf("%q decoded to %+v, out of range", s, doc)
			}
		}
		var n yaml.Node
		if yaml.Unmarshal([]byte(s), &n) != nil || len(n.Content) == 0 || n.Content[0].Kind != yaml.MappingNode {
			return
		}
		m := n.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			v := m.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				continue
			}
			var c Cores
			cErr := c.UnmarshalYAML(v)
			want, wantErr := ParseCores(v.Value)
			if (cErr == nil) != (wantErr == nil) || cErr == nil && c != want {
				t.Fatalf("%q: scalar %q (%s) = %v, %v; ParseCores: %v, %v", s, v.Value, v.Tag, c, cErr, want, wantErr)
			}
		}
	})
}

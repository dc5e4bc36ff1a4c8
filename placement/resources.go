package placement

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Limits beyond which a resource amount is refused as absurd rather than
// compared with a fleet: they catch unit mistakes (bytes sent as KiB, a
// missing decimal point) while leaving room for "1000 cores" to be refused
// politely by fit as insufficient_cpu.
const (
	// MaxCores is the largest CPU amount accepted, in cores.
	MaxCores = 100000
	// MaxBytes is the largest memory or disk amount accepted: 1 EiB.
	MaxBytes = 1 << 60
	// cpuDecimals is Docker's --cpus precision (NanoCPUs).
	cpuDecimals = 9
)

// Cores is an amount of CPU in cores, as Docker's --cpus takes it.
// It reads from JSON and YAML as a number (1.5) or a string ("1.5").
type Cores float64

// Bytes is an amount of memory or disk in bytes. It reads from JSON and YAML
// as a whole number of bytes or a Docker size string ("512m", "1.5g").
type Bytes int64

// Resources is what a deployment or build needs, or what a reservation holds.
type Resources struct {
	CPU    Cores `json:"cpu" yaml:"cpu"`
	Memory Bytes `json:"memory" yaml:"memory"`
	Disk   Bytes `json:"disk" yaml:"disk"`
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{CPU: r.CPU + o.CPU, Memory: r.Memory + o.Memory, Disk: r.Disk + o.Disk}
}

// FieldError is an invalid value with the path of the field that holds it,
// dot-separated from the document root ("requirements.memory",
// "builds.profiles.node_application.memory"). HTTP handlers and the policy
// loader report Field as is.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

// fieldErr wraps err with a field path, prefixing the path of an inner
// FieldError so nested errors read from the root.
func fieldErr(field string, err error) error {
	if err == nil {
		return nil
	}
	var fe *FieldError
	if errors.As(err, &fe) && fe.Field != "" {
		return &FieldError{Field: field + "." + fe.Field, Err: fe.Err}
	}
	return &FieldError{Field: field, Err: err}
}

// ParseCores parses a CPU amount in cores the way Docker's --cpus does: a
// plain decimal number ("2", "1.5", ".5") with at most nine decimals. Signs,
// exponents, hexadecimal, NaN/Inf, suffixes (Kubernetes' "500m") and
// surrounding spaces are refused, because each is more likely a mistake
// than an intent. JSON and YAML numbers are read through it too, as their
// literal text, so 1.0000000001 and "1.0000000001" get the same answer.
func ParseCores(s string) (Cores, error) {
	if s == "" {
		return 0, errors.New("empty cpu amount (want cores, e.g. \"1.5\")")
	}
	if err := surroundingSpace(s); err != nil {
		return 0, fmt.Errorf("invalid cpu amount %q: %w", s, err)
	}
	intPart, frac, ok := splitDecimal(s)
	if !ok {
		switch {
		case strings.HasSuffix(s, "m"):
			return 0, fmt.Errorf("invalid cpu amount %q: cpu is in cores (Docker --cpus form, e.g. \"0.5\"), not millicores", s)
		case strings.HasPrefix(s, "-"):
			return 0, fmt.Errorf("invalid cpu amount %q: must not be negative", s)
		}
		return 0, fmt.Errorf("invalid cpu amount %q: want a decimal number of cores without sign, exponent or unit, e.g. \"1.5\"", s)
	}
	if len(frac) > cpuDecimals {
		return 0, fmt.Errorf("invalid cpu amount %q: too precise (at most %d decimals)", s, cpuDecimals)
	}
	v := parseDigits(intPart, frac)
	if v > MaxCores {
		return 0, fmt.Errorf("invalid cpu amount %q: more than %d cores", s, MaxCores)
	}
	return Cores(v), nil
}

// surroundingSpace refuses leading and trailing white space: " 1" is as
// likely a template gone wrong as a number.
func surroundingSpace(s string) error {
	if strings.TrimSpace(s) != s {
		return errors.New("leading or trailing space")
	}
	return nil
}

// parseDigits converts what splitDecimal returned (digits only, so the
// one error ParseFloat can give is ErrRange). A number too large for a
// float64 is +Inf, which the callers' range checks refuse; one too small
// is 0 or subnormal, which is what its digits mean at this precision.
func parseDigits(intPart, frac string) float64 {
	v, _ := strconv.ParseFloat(intPart+"."+frac+"0", 64)
	return v
}

// byteUnits are Docker's (go-units RAMInBytes) multipliers: binary, so "1g"
// is 1024³ bytes, as `docker run --memory 1g` means.
var byteUnits = map[byte]float64{
	'b': 1,
	'k': 1 << 10,
	'm': 1 << 20,
	'g': 1 << 30,
	't': 1 << 40,
	'p': 1 << 50,
}

// ParseBytes parses a memory or disk amount the way Docker's --memory does:
// a number with an optional unit b, k, m, g, t or p (any case, binary
// multiples: k = 1024), optionally followed by "i" and/or "b" and separated
// by at most one space, so "512m", "512M", "512mb", "512Mi", "512 MiB" and
// "1.5g" all parse; a bare number is bytes. Fractions are truncated to whole
// bytes as Docker does. Signs, exponents, unknown units and surrounding
// spaces are refused. JSON and YAML numbers are read through it too, as
// their literal text.
func ParseBytes(s string) (Bytes, error) {
	if s == "" {
		return 0, errors.New("empty size (want bytes or a size like \"512m\", \"1g\")")
	}
	if err := surroundingSpace(s); err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", s, err)
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("invalid size %q: must not be negative", s)
	}
	// Split the numeric prefix from the unit.
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], s[i:]
	intPart, frac, ok := splitDecimal(num)
	if !ok {
		return 0, fmt.Errorf("invalid size %q: want a number of bytes or a size like \"512m\", \"1.5g\"", s)
	}
	if isExponent(unit) {
		return 0, fmt.Errorf("invalid size %q: exponents are not accepted (write the number of bytes in full, or use a unit: \"1g\")", s)
	}
	unit = strings.TrimPrefix(unit, " ")
	mult := 1.0
	if unit != "" {
		u := strings.ToLower(unit)
		m, known := byteUnits[u[0]]
		rest := u[1:]
		if u[0] == 'b' {
			// "b" alone is bytes; "bi", "bb" are not units.
			known = known && rest == ""
		} else {
			rest = strings.TrimPrefix(rest, "i")
			rest = strings.TrimPrefix(rest, "b")
		}
		if !known || rest != "" {
			return 0, fmt.Errorf("invalid size %q: unknown unit %q (want b, k, m, g, t or p, e.g. \"512m\")", s, unit)
		}
		mult = m
	}
	v := parseDigits(intPart, frac)
	if v*mult > MaxBytes {
		return 0, fmt.Errorf("invalid size %q: more than 1Ei bytes", s)
	}
	return Bytes(math.Floor(v * mult)), nil
}

// isExponent reports whether what follows a number is an exponent ("e9",
// "E+3", "e-7"), as a JSON or YAML number may carry.
func isExponent(s string) bool {
	if len(s) < 2 || s[0] != 'e' && s[0] != 'E' {
		return false
	}
	s = s[1:]
	if s[0] == '+' || s[0] == '-' {
		s = s[1:]
	}
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// splitDecimal splits "12.5" into "12" and "5"; it accepts "12", "12.",
// ".5" and nothing else (at least one digit, at most one point).
func splitDecimal(s string) (intPart, frac string, ok bool) {
	intPart, frac, _ = strings.Cut(s, ".")
	if intPart == "" && frac == "" {
		return "", "", false
	}
	for _, p := range []string{intPart, frac} {
		for j := 0; j < len(p); j++ {
			if p[j] < '0' || p[j] > '9' {
				return "", "", false
			}
		}
	}
	if intPart == "" {
		intPart = "0"
	}
	return intPart, frac, true
}

// String formats c as Docker's --cpus would take it.
func (c Cores) String() string { return strconv.FormatFloat(float64(c), 'f', -1, 64) }

// String formats b in Kubernetes' quantity style: the largest binary unit
// that divides it exactly ("2Gi", "1536Mi"), else plain bytes.
func (b Bytes) String() string {
	units := []string{"Pi", "Ti", "Gi", "Mi", "Ki"}
	for i, u := range units {
		m := int64(1) << (10 * (len(units) - i))
		if b != 0 && int64(b)%m == 0 {
			return strconv.FormatInt(int64(b)/m, 10) + u
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalJSON writes c as a number of cores.
func (c Cores) MarshalJSON() ([]byte, error) { return []byte(c.String()), nil }

// MarshalJSON writes b as a whole number of bytes.
func (b Bytes) MarshalJSON() ([]byte, error) { return []byte(strconv.FormatInt(int64(b), 10)), nil }

// UnmarshalJSON reads a number of cores or a string, both by ParseCores:
// a number is read as its literal text, never through a float64 first.
// null leaves c unchanged, as encoding/json does for other types.
func (c *Cores) UnmarshalJSON(data []byte) error {
	return unmarshalQuantity(data, c, ParseCores)
}

// UnmarshalJSON reads a number of bytes or a string, both by ParseBytes,
// as Cores.UnmarshalJSON does. null leaves b unchanged.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	return unmarshalQuantity(data, b, ParseBytes)
}

// unmarshalQuantity parses a JSON number's literal or a string's content
// with parse and stores the result in dst; null leaves dst unchanged.
func unmarshalQuantity[T any](data []byte, dst *T, parse func(string) (T, error)) error {
	s, present, err := jsonScalar(data)
	if err != nil || !present {
		return err
	}
	v, err := parse(s)
	if err != nil {
		return err
	}
	*dst = v
	return nil
}

// jsonScalar returns a JSON string's content or a number's literal, and
// whether there was one: null is ("", false, nil); anything else is an
// error naming what it got.
func jsonScalar(data []byte) (string, bool, error) {
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0 || string(data) == "null":
		return "", false, nil
	case data[0] == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return "", false, err
		}
		return s, true, nil
	case data[0] == '-' || data[0] >= '0' && data[0] <= '9':
		return string(data), true, nil
	default:
		return "", false, fmt.Errorf("want a number or a string, got %s", jsonKind(data[0]))
	}
}

func jsonKind(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	}
	return "an invalid value"
}

// UnmarshalYAML reads a number of cores or a string by ParseCores; a YAML
// number is read as its literal text, as in JSON.
func (c *Cores) UnmarshalYAML(n *yaml.Node) error {
	return unmarshalYAMLQuantity(n, c, ParseCores, "want a number of cores")
}

// UnmarshalYAML reads a number of bytes or a size string by ParseBytes; a
// YAML number is read as its literal text.
func (b *Bytes) UnmarshalYAML(n *yaml.Node) error {
	return unmarshalYAMLQuantity(n, b, ParseBytes, "want a number of bytes or a size like \"512m\"")
}

func unmarshalYAMLQuantity[T any](n *yaml.Node, dst *T, parse func(string) (T, error), want string) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New(want)
	}
	v, err := parse(n.Value)
	if err != nil {
		return err
	}
	*dst = v
	return nil
}

// MarshalYAML writes b in its String form, which ParseBytes reads back.
func (b Bytes) MarshalYAML() (any, error) {
	s := b.String()
	if strings.HasSuffix(s, "i") {
		return s, nil
	}
	return int64(b), nil
}

// UnmarshalJSON reads resources strictly: keys other than cpu, memory and
// disk are refused, and a bad value is reported with its key as Field, so
// an HTTP handler can name "requirements.memory".
func (r *Resources) UnmarshalJSON(data []byte) error {
	if string(bytes.TrimSpace(data)) == "null" {
		return nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("want an object with cpu, memory and disk: %w", err)
	}
	var out Resources
	// Sorted keys: with several bad fields the one reported is stable.
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		v := raw[k]
		var err error
		switch k {
		case "cpu":
			err = out.CPU.UnmarshalJSON(v)
		case "memory":
			err = out.Memory.UnmarshalJSON(v)
		case "disk":
			err = out.Disk.UnmarshalJSON(v)
		case "":
			// No field to name: the error is the object's.
			return errors.New("a key must not be empty (want cpu, memory, disk)")
		default:
			err = errors.New("unknown field (want cpu, memory, disk)")
		}
		if err != nil {
			return &FieldError{Field: k, Err: err}
		}
	}
	*r = out
	return nil
}

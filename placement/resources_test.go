package placement

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestParseCores(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Cores
		wantErr string
	}{
		{in: "1", want: 1},
		{in: "1.5", want: 1.5},
		{in: " 2 ", wantErr: "leading or trailing space"},
		{in: " 1", wantErr: "leading or trailing space"},
		{in: "1 ", wantErr: "leading or trailing space"},
		{in: "1\n", wantErr: "leading or trailing space"},
		{in: "1.0000000001", wantErr: "too precise"},
		{in: ".5", want: 0.5},
		{in: "2.", want: 2},
		{in: "0", want: 0},
		{in: "0.000000001", want: 0.000000001},
		{in: "1000", want: 1000},
		{in: "100000", want: 100000},
		{in: "", wantErr: "empty cpu amount"},
		{in: "-1", wantErr: "must not be negative"},
		{in: "500m", wantErr: "not millicores"},
		{in: "1e3", wantErr: "want a decimal number"},
		{in: "1E-7", wantErr: "without sign, exponent or unit"},
		{in: "0x10", wantErr: "want a decimal number"},
		{in: "NaN", wantErr: "want a decimal number"},
		{in: "Inf", wantErr: "want a decimal number"},
		{in: "1.2.3", wantErr: "want a decimal number"},
		{in: ".", wantErr: "want a decimal number"},
		{in: "+1", wantErr: "want a decimal number"},
		{in: "1 core", wantErr: "want a decimal number"},
		{in: "0.0000000001", wantErr: "too precise"},
		{in: "100001", wantErr: "more than 100000 cores"},
		{in: "99999999999999999999999", wantErr: "more than"},
		{in: strings.Repeat("9", 400), wantErr: "more than 100000 cores"},
	} {
		got, err := ParseCores(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseCores(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseCores(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	const (
		ki = 1 << 10
		mi = 1 << 20
		gi = 1 << 30
	)
	for _, tc := range []struct {
		in      string
		want    Bytes
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "1024", want: 1024},
		{in: "1024b", want: 1024},
		{in: "1024B", want: 1024},
		{in: "1k", want: ki},
		{in: "512m", want: 512 * mi},
		{in: "512M", want: 512 * mi},
		{in: "512mb", want: 512 * mi},
		{in: "512MB", want: 512 * mi},
		{in: "512Mi", want: 512 * mi},
		{in: "512MiB", want: 512 * mi},
		{in: "512 m", want: 512 * mi},
		{in: "1g", want: gi},
		{in: "1.5g", want: gi + gi/2},
		{in: "1.5G", want: gi + gi/2},
		{in: "2t", want: 2 << 40},
		{in: "1p", want: 1 << 50},
		{in: "1024p", want: 1 << 60},
		{in: "1.5", want: 1}, // truncated to whole bytes, as Docker does
		{in: "0.5k", want: 512},
		{in: "", wantErr: "empty size"},
		{in: "-1", wantErr: "must not be negative"},
		{in: "-512m", wantErr: "must not be negative"},
		{in: "1x", wantErr: "unknown unit"},
		{in: "1kk", wantErr: "unknown unit"},
		{in: "1bi", wantErr: "unknown unit"},
		{in: "1ib", wantErr: "unknown unit"},
		{in: "1  m", wantErr: "unknown unit"},
		{in: "m", wantErr: "want a number"},
		{in: "1e9", wantErr: "exponents are not accepted"},
		{in: "1E+9", wantErr: "exponents are not accepted"},
		{in: "1.5e3k", wantErr: "unknown unit"},
		{in: " 1", wantErr: "leading or trailing space"},
		{in: "1 ", wantErr: "leading or trailing space"},
		{in: "512m ", wantErr: "leading or trailing space"},
		{in: "\t1g", wantErr: "leading or trailing space"},
		{in: strings.Repeat("9", 400), wantErr: "more than 1Ei"},
		{in: "0." + strings.Repeat("0", 400) + "1", want: 0},
		{in: "1.2.3g", wantErr: "want a number"},
		{in: "0x10", wantErr: "unknown unit"},
		{in: "1025p", wantErr: "more than 1Ei"},
		{in: "NaN", wantErr: "want a number"},
	} {
		got, err := ParseBytes(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseBytes(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestBytesString(t *testing.T) {
	for _, tc := range []struct {
		in   Bytes
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1023, "1023"},
		{1024, "1Ki"},
		{2 << 30, "2Gi"},
		{1536 << 20, "1536Mi"},
		{32 << 30, "32Gi"},
		{3 << 50, "3Pi"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("Bytes(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
	}
}

func TestResourcesJSON(t *testing.T) {
	for _, tc := range []struct {
		in        string
		want      Resources
		wantField string
		wantErr   string
	}{
		{in: `{"cpu": 1.5, "memory": "512m", "disk": "1g"}`, want: Resources{CPU: 1.5, Memory: 512 << 20, Disk: 1 << 30}},
		{in: `{"cpu": "2", "memory": 1073741824}`, want: Resources{CPU: 2, Memory: 1 << 30}},
		{in: `{"cpu": null}`, want: Resources{}},
		{in: `{}`, want: Resources{}},
		{in: `{"cpu": 0.1}`, want: Resources{CPU: 0.1}},
		{in: `{"memory": 1000000000}`, want: Resources{Memory: 1e9}},
		{in: `{"memory": 1536.5}`, want: Resources{Memory: 1536}},
		{in: `{"cpu": 1.000000001}`, want: Resources{CPU: 1.000000001}},
		// A number is read as its literal, by the string's parser: the same
		// value given either way gets the same answer.
		{in: `{"cpu": 1.0000000001}`, wantField: "cpu", wantErr: "too precise"},
		{in: `{"cpu": "1.0000000001"}`, wantField: "cpu", wantErr: "too precise"},
		{in: `{"memory": 1e9}`, wantField: "memory", wantErr: "exponents are not accepted"},
		{in: `{"cpu": 1e-7}`, wantField: "cpu", wantErr: "exponent"},
		{in: `{"cpu": -0}`, wantField: "cpu", wantErr: "must not be negative"},
		{in: `{"cpu": " 1"}`, wantField: "cpu", wantErr: "leading or trailing space"},
		{in: `{"memory": "1g "}`, wantField: "memory", wantErr: "leading or trailing space"},
		{in: `{"cpu": -1}`, wantField: "cpu", wantErr: "must not be negative"},
		{in: `{"memory": "-1g"}`, wantField: "memory", wantErr: "must not be negative"},
		{in: `{"memory": "12 parsecs"}`, wantField: "memory", wantErr: "unknown unit"},
		{in: `{"disk": true}`, wantField: "disk", wantErr: "got a boolean"},
		{in: `{"cpu": [1]}`, wantField: "cpu", wantErr: "got an array"},
		{in: `{"cpu": 1e400}`, wantField: "cpu", wantErr: "invalid cpu amount"},
		{in: `{"gpu": 1}`, wantField: "gpu", wantErr: "unknown field"},
		{in: `{"": 1}`, wantErr: "a key must not be empty"}, // found by FuzzQuantityJSON
		{in: `[1]`, wantErr: "want an object"},
	} {
		var got Resources
		err := json.Unmarshal([]byte(tc.in), &got)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err = %v, want containing %q", tc.in, err, tc.wantErr)
				continue
			}
			var fe *FieldError
			if tc.wantField != "" && (!errors.As(err, &fe) || fe.Field != tc.wantField) {
				t.Errorf("%s: err = %#v, want field %q", tc.in, err, tc.wantField)
			}
			if tc.wantField == "" && errors.As(err, &fe) {
				t.Errorf("%s: err = %#v, a field error naming no field", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}

	// Round trip: what we write reads back identically.
	r := Resources{CPU: 1.25, Memory: 3 << 30, Disk: 12345}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"cpu":1.25,"memory":3221225472,"disk":12345}` {
		t.Errorf("marshal = %s", b)
	}
	var back Resources
	if err := json.Unmarshal(b, &back); err != nil || back != r {
		t.Errorf("round trip = %+v, %v", back, err)
	}
}

func TestResourcesYAML(t *testing.T) {
	var got struct {
		CPU Cores `yaml:"cpu"`
		Mem Bytes `yaml:"mem"`
		N   Bytes `yaml:"n"`
	}
	if err := yaml.Unmarshal([]byte("cpu: 0.5\nmem: 512Mi\nn: 1024\n"), &got); err != nil {
		t.Fatal(err)
	}
	if got.CPU != 0.5 || got.Mem != 512<<20 || got.N != 1024 {
		t.Errorf("got %+v", got)
	}
	if err := yaml.Unmarshal([]byte("mem: lots\n"), &got); err == nil || !strings.Contains(err.Error(), "invalid size") {
		t.Errorf("bad yaml size: err = %v", err)
	}
	// YAML numbers go through the string parsers too: the same rule as a
	// quoted value and as JSON.
	for in, want := range map[string]string{
		"cpu: 1.0000000001\n":     "too precise",
		"cpu: \"1.0000000001\"\n": "too precise",
		"cpu: \" 1\"\n":           "leading or trailing space",
		"cpu: 0x10\n":             "want a decimal number",
		"cpu: .inf\n":             "want a decimal number",
		"mem: 1e9\n":              "exponents are not accepted",
		"n: \"1024 \"\n":          "leading or trailing space",
	} {
		if err := yaml.Unmarshal([]byte(in), &got); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("yaml %q: err = %v, want containing %q", in, err, want)
		}
	}
}

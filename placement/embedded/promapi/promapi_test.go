package promapi

import (
	"testing"
	"time"
)

func TestParseTimeAndDuration(t *testing.T) {
	for in, want := range map[string]time.Time{
		"1700000000":           time.Unix(1700000000, 0),
		"1700000000.5":         time.Unix(1700000000, 5e8),
		"2023-11-14T22:13:20Z": time.Unix(1700000000, 0),
	} {
		if got, err := parseTime(in); err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "NaN", "Inf", "yesterday"} {
		if _, err := parseTime(bad); err == nil {
			t.Errorf("parseTime(%q) accepted", bad)
		}
	}
	for in, want := range map[string]time.Duration{"15": 15 * time.Second, "0.5": 500 * time.Millisecond, "1m30s": 90 * time.Second} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "1e300", "soon"} {
		if _, err := parseDuration(bad); err == nil {
			t.Errorf("parseDuration(%q) accepted", bad)
		}
	}
	for in, want := range map[string]string{"v0.316.0": "3.16.0", "v0.300.1": "3.0.1", "v0.55.0": "fallback", "devel": "fallback"} {
		if got := libraryVersion(in, "fallback"); got != want {
			t.Errorf("libraryVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
)

// TestIntegrationBadFlags runs the real binary with values that the source
// would otherwise replace by its defaults without a word: each is refused
// at start, before anything is opened, with a message naming the flag.
func TestIntegrationBadFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	bin := testenv.Binary(t, "berth-placement")
	for _, tc := range []struct{ flag, value string }{
		{"query.timeout", "0s"},
		{"query.timeout", "-5s"},
		{"placement.snapshot-timeout", "0s"},
		{"placement.snapshot-ttl", "-1s"},
		{"prometheus.timeout", "0s"},
		{"scrape.exporter-address", ""},
		{"scrape.exporter-address", "no-port"},
		{"query.max-samples", "0"},
		{"query.max-samples", "-1"},
		{"storage.retention", "0s"},
		{"storage.path", ""},
		{"rules.file", ""},
		{"web.listen-address", ""},
		{"web.bearer-tokens-file", ""},
		{"placement.policy-file", ""},
		{"prometheus.url", ""},
		{"scrape.config-file", ""},
	} {
		t.Run(tc.flag+"="+tc.value, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"--" + tc.flag + "=" + tc.value}
			if tc.flag != "storage.path" {
				args = append(args, "--storage.path="+dir+"/data")
			}
			if tc.flag != "web.listen-address" {
				args = append(args, "--web.listen-address="+testenv.FreePort(t))
			}
			cmd := exec.Command(bin, args...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("%v: exit %v, want a non-zero exit; output:\n%s", args, err, out)
			}
			if !strings.Contains(string(out), "--"+tc.flag+" ") {
				t.Errorf("the message does not name --%s:\n%s", tc.flag, out)
			}
			if strings.Contains(string(out), "panic") || strings.Contains(string(out), "goroutine ") {
				t.Errorf("panicked:\n%s", out)
			}
			if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
				t.Errorf("a refused start wrote to the storage path: %v %v", entries, err)
			}
		})
	}
}

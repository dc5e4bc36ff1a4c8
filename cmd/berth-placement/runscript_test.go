package main

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
)

// TestIntegrationRunScript runs `make run`'s script (scripts/run.sh) with
// the binaries under test, on free ports and a temporary data directory,
// runs every curl command it prints exactly as printed, then stops the
// script with SIGTERM and checks that both processes it started are gone.
func TestIntegrationRunScript(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	testenv.LookPath(t, "curl", "curl")
	bin := t.TempDir()
	for _, name := range []string{"berth-exporter", "berth-placement"} {
		if err := os.Symlink(testenv.Binary(t, name), filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	_, exporterPort, _ := net.SplitHostPort(testenv.FreePort(t))
	_, placementPort, _ := net.SplitHostPort(testenv.FreePort(t))
	for k, v := range map[string]string{
		"BIN": bin, "DATA": t.TempDir(), "EXPORTER_PORT": exporterPort, "PLACEMENT_PORT": placementPort,
		"SERVER_NAME": "berth-run-itest", "SCRAPE_INTERVAL": "2s", "DEMO": "0",
	} {
		t.Setenv(k, v)
	}
	script := testenv.Start(t, "sh", filepath.Join(testenv.RepoRoot(), "scripts", "run.sh"))
	exited := make(chan error, 1)
	go func() { exited <- script.Cmd.Wait() }()

	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(script.Output(), "Press Ctrl-C to stop.") {
		select {
		case err := <-exited:
			t.Fatalf("run.sh exited (%v) before printing its commands:\n%s", err, script.Output())
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("run.sh printed no commands within 3m:\n%s", script.Output())
		}
	}

	commands := printedCurlCommands(script.Output())
	if len(commands) < 5 {
		t.Fatalf("found %d curl commands in run.sh's output:\n%s", len(commands), script.Output())
	}
	for _, want := range []string{"/api/v1/servers", "/api/v1/placements/check", "/api/v1/placements", "/api/v1/reservations"} {
		found := false
		for _, c := range commands {
			if strings.Contains(c, want+" ") || strings.HasSuffix(c, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no printed command calls %s; commands: %q", want, commands)
		}
	}
	for _, c := range commands {
		// As printed, plus -w to learn the status (curl -s prints the
		// body whatever the status).
		out, err := exec.Command("sh", "-c", c+` -w '\n%{http_code}'`).Output()
		if err != nil {
			t.Errorf("%s: %v\n%s", c, err, out)
			continue
		}
		body, code, _ := cutLast(string(out), "\n")
		status, _ := strconv.Atoi(code)
		t.Logf("%s → %d", c, status)
		if status < 200 || status > 299 {
			t.Errorf("%s: status %s: %s", c, code, body)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &obj); err != nil {
			t.Errorf("%s: not a JSON object: %v\n%s", c, err, body)
		} else if _, isErr := obj["error"]; isErr {
			t.Errorf("%s: answered an error: %s", c, body)
		}
	}

	// SIGTERM to the script alone (not its process group): it must stop
	// what it started.
	if err := script.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("run.sh did not exit within 30s of SIGTERM:\n%s", script.Output())
	}
	m := regexp.MustCompile(`stopping \(pids([ 0-9]+)\)`).FindStringSubmatch(script.Output())
	if m == nil || len(strings.Fields(m[1])) != 2 {
		t.Fatalf("run.sh did not say which processes it stopped:\n%s", script.Output())
	}
	for _, p := range strings.Fields(m[1]) {
		pid, _ := strconv.Atoi(p)
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after run.sh stopped (kill -0: %v)", pid, err)
		}
	}
	for _, port := range []string{exporterPort, placementPort} {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), time.Second); err == nil {
			c.Close()
			t.Errorf("something still listens on port %s", port)
		}
	}
}

// printedCurlCommands returns the curl command lines of the script's
// output, continuation lines (ending in a backslash) joined.
func printedCurlCommands(output string) []string {
	var (
		commands []string
		current  string
	)
	for _, line := range strings.Split(output, "\n") {
		line = strings.TrimSpace(line)
		if current == "" && !strings.HasPrefix(line, "curl ") {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			current += cont
			continue
		}
		commands = append(commands, current+line)
		current = ""
	}
	return commands
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return "", s, false
	}
	return s[:i], s[i+len(sep):], true
}

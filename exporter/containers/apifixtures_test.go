package containers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestInspectFixtures decodes inspect answers recorded from the real
// engines (testdata/api) the way the cache does, and checks what the OOM
// ledger relies on: state and pid of one answer, and what OOMKilled says.
func TestInspectFixtures(t *testing.T) {
	tests := []struct {
		file      string
		state     string
		pid       int
		exitCode  int
		oomKilled bool
		running   bool
	}{
		// Restart back-off after an OOM kill: pid 0, the run's OOMKilled.
		{"docker/inspect-oomr.json", "restarting", 0, 137, true, false},
		// Started again after an OOM exit: OOMKilled still speaks of the
		// run before.
		{"docker/inspect-oomchild.json", "running", 3616, 0, true, true},
		{"docker/inspect-oomnr.json", "exited", 0, 137, true, false},
		// Podman never says OOMKilled.
		{"podman/inspect-oomnr.json", "exited", 0, 137, false, false},
		{"podman/inspect-oomr.json", "running", 20075, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "api", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var d containerInspect
			if err := json.Unmarshal(data, &d); err != nil {
				t.Fatalf("decoding: %v", err)
			}
			ct := fromInspect(d)
			if ct.State != tt.state || ct.Pid != tt.pid || ct.ExitCode != tt.exitCode || ct.OOMKilled != tt.oomKilled || ct.Running() != tt.running {
				t.Errorf("got state %q pid %d exit %d OOMKilled %v running %v, want %q %d %d %v %v",
					ct.State, ct.Pid, ct.ExitCode, ct.OOMKilled, ct.Running(), tt.state, tt.pid, tt.exitCode, tt.oomKilled, tt.running)
			}
			if len(ct.ID) != 64 || ct.Name == "" || ct.Name[0] == '/' || ct.StartedAt.IsZero() {
				t.Errorf("id %q, name %q, started %v", ct.ID, ct.Name, ct.StartedAt)
			}
		})
	}
}

// TestEventFixtures replays event streams recorded from the real engines
// into the cache: dockerd's "oom" events become one report per run,
// Podman's stream has none.
func TestEventFixtures(t *testing.T) {
	for engine, want := range map[string]map[string]int{
		// oomr: OOM-killed in its first two runs; oomchild, oomnr: once.
		"docker": {"oomr": 2, "oomchild": 1, "oomnr": 1},
		"podman": {},
	} {
		t.Run(engine, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "api", engine, "events.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			c := newMetadataCache(nil, newOOMLedger(time.Time{}), time.Minute, time.Second, testLogger(t))
			names := map[string]string{}
			n := 0
			err = readEvents(bytes.NewReader(data), func(ev event) {
				n++
				c.onEvent(ev)
			})
			if !errors.Is(err, io.EOF) {
				t.Fatalf("reading events: %v", err)
			}
			if n != bytes.Count(data, []byte("\n")) {
				t.Errorf("%d container events, want one per line", n)
			}
			for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
				var ev struct {
					Actor struct {
						ID         string
						Attributes map[string]string
					}
				}
				if err := json.Unmarshal(line, &ev); err != nil {
					t.Fatal(err)
				}
				names[ev.Actor.ID] = ev.Actor.Attributes["name"]
			}
			got := map[string]int{}
			for id, runs := range c.oomRuns {
				got[names[id]] = len(runs)
			}
			if len(got) != len(want) {
				t.Errorf("OOM reports per container %v, want %v", got, want)
			}
			for name, n := range want {
				if got[name] != n {
					t.Errorf("%s: %d runs with an OOM report, want %d", name, got[name], n)
				}
			}
		})
	}
}

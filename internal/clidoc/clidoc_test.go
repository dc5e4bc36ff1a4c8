package clidoc

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite docs/cli/ from the built binaries")

// TestCommandLineReference: docs/cli/<command>.md is exactly what the
// command prints with --write-documentation, so no flag changes without
// its reference (`make docs` rewrites them).
func TestCommandLineReference(t *testing.T) {
	for _, command := range []string{"berth-exporter", "berth-placement", "berth-fleetsim"} {
		t.Run(command, func(t *testing.T) {
			out, err := exec.Command(testenv.Binary(t, command), "--"+Flag).Output()
			if err != nil {
				t.Fatalf("%s --%s: %v", command, Flag, err)
			}
			if !bytes.Contains(out, []byte("--log.level")) {
				t.Fatalf("%s --%s printed no flags:\n%s", command, Flag, out)
			}
			path := filepath.Join(testenv.RepoRoot(), "docs", "cli", command+".md")
			if *update {
				if err := os.WriteFile(path, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("reading %s (run `make docs`): %v", path, err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("%s differs from `%s --%s`: run `make docs` and review the diff.\nfirst difference near: %q",
					path, command, Flag, firstDifference(string(want), string(out)))
			}
		})
	}
}

func firstDifference(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return bl[i]
		}
	}
	return "(one is a prefix of the other)"
}

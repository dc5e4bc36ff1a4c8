package dashboards

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the dashboard JSON files from the Go definitions")

// TestGeneratedFilesUpToDate keeps the committed JSON (what users import)
// equal to what the definitions produce. Run with -update after changing a
// definition and review the diff.
func TestGeneratedFilesUpToDate(t *testing.T) {
	generated, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range generated {
		if *update {
			if err := os.WriteFile(name, content, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		committed, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("%s: %v (run go generate ./dashboards/)", name, err)
			continue
		}
		if !bytes.Equal(committed, content) {
			t.Errorf("%s differs from its definition (run go generate ./dashboards/ and review the diff)", name)
		}
	}
	// No stale dashboard left behind by a rename.
	files, err := filepath.Glob("*.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := generated[f]; !ok {
			if *update {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
				continue
			}
			t.Errorf("%s is not produced by any definition (remove it or run -update)", f)
		}
	}
}

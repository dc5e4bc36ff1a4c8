package rules

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRulesWriteTo(t *testing.T) {
	dir := t.TempDir()
	if err := WriteTo(dir, strings.NewReplacer("[5m]", "[10s]").Replace); err != nil {
		t.Fatal(err)
	}
	names, _ := fs.Glob(Files, "*.rules.yml")
	if len(names) == 0 {
		t.Fatal("no shipped rule files")
	}
	for _, name := range names {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := Files.ReadFile(name)
		if string(got) != strings.ReplaceAll(string(want), "[5m]", "[10s]") {
			t.Errorf("%s: written text is not the shipped text rewritten", name)
		}
	}
	if err := WriteTo(filepath.Join(dir, "missing"), nil); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

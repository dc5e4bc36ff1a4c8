package rules

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteTo writes every shipped rule file into dir (which must exist), for
// a Prometheus rule manager that loads files from disk. rewrite, when not
// nil, changes each file's text first (tests shrink the rate windows so
// that a few seconds of samples give meaningful rates).
func WriteTo(dir string, rewrite func(string) string) error {
	names, err := fs.Glob(Files, "*.rules.yml")
	if err != nil {
		return err
	}
	for _, name := range names {
		data, err := Files.ReadFile(name)
		if err != nil {
			return err
		}
		if rewrite != nil {
			data = []byte(rewrite(string(data)))
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("writing rule file: %w", err)
		}
	}
	return nil
}

// Command gen writes the dashboard JSON files from their Go definitions
// into the current directory: `go generate ./dashboards/` (a test fails
// when a committed file differs from its definition).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/dashboards"
)

func main() {
	files, err := dashboards.Generate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(".", name), data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}

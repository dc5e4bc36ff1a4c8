// Package clidoc gives each Berth command a hidden --write-documentation
// flag that prints its command-line reference as Markdown, with the
// generator Prometheus uses for its own docs/command-line/
// (util/documentcli). `make docs` writes docs/cli/ with it, and a test fails
// when a flag changes and the reference does not.
package clidoc

import (
	"fmt"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/prometheus/util/documentcli"
)

// Flag is the hidden flag's name.
const Flag = "write-documentation"

// AddFlag adds --write-documentation to app. Add it last, once every other
// flag is defined: it prints the application's model as it is then.
func AddFlag(app *kingpin.Application) {
	app.Flag(Flag, "Print the command-line reference as Markdown and exit.").Hidden().PreAction(func(*kingpin.ParseContext) error {
		if err := documentcli.GenerateMarkdown(app.Model(), os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "%s: writing documentation: %v\n", app.Name, err)
			os.Exit(1)
		}
		os.Exit(0)
		return nil
	}).Bool()
}

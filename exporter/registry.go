package exporter

import (
	"fmt"
	"log/slog"
	"sort"

	"github.com/alecthomas/kingpin/v2"
)

// Factory builds a collector once flags are parsed.
type Factory func(logger *slog.Logger) (Collector, error)

// Registry holds the collectors a binary knows, each behind its own
// --collector.<name> / --no-collector.<name> flag.
type Registry struct {
	app     *kingpin.Application
	entries map[string]*entry
}

type entry struct {
	factory Factory
	enabled *bool
}

// NewRegistry returns a registry that defines its collector flags on app.
func NewRegistry(app *kingpin.Application) *Registry {
	return &Registry{app: app, entries: map[string]*entry{}}
}

// App is the kingpin application collectors define their own flags on.
func (r *Registry) App() *kingpin.Application { return r.app }

// Register adds a collector and its enable flag. It panics on a duplicate
// name: that is a programming error found by the first test run.
func (r *Registry) Register(name string, enabledByDefault bool, factory Factory) {
	if _, dup := r.entries[name]; dup {
		panic(fmt.Sprintf("collector %q registered twice", name))
	}
	state := "disabled"
	if enabledByDefault {
		state = "enabled"
	}
	enabled := r.app.Flag("collector."+name,
		fmt.Sprintf("Enable the %s collector (default: %s).", name, state)).
		Default(fmt.Sprint(enabledByDefault)).Bool()
	r.entries[name] = &entry{factory: factory, enabled: enabled}
}

// Always adds a collector that cannot be switched off (no flag): one the
// rest of Berth cannot work without, such as the server's identity.
func (r *Registry) Always(name string, factory Factory) {
	if _, dup := r.entries[name]; dup {
		panic(fmt.Sprintf("collector %q registered twice", name))
	}
	enabled := true
	r.entries[name] = &entry{factory: factory, enabled: &enabled}
}

// Build creates every enabled collector. Call it after flags are parsed.
func (r *Registry) Build(logger *slog.Logger) (map[string]Collector, error) {
	names := make([]string, 0, len(r.entries))
	for name := range r.entries {
		names = append(names, name)
	}
	sort.Strings(names)
	collectors := map[string]Collector{}
	for _, name := range names {
		e := r.entries[name]
		if !*e.enabled {
			continue
		}
		c, err := e.factory(logger.With("collector", name))
		if err != nil {
			return nil, fmt.Errorf("collector %s: %w", name, err)
		}
		collectors[name] = c
	}
	return collectors, nil
}

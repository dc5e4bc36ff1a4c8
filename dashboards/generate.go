package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// definitions lists every dashboard in the order of the documentation.
var definitions = []func() *dashboard{
	fleetCapacity,
	server,
	containers,
	builds,
	organizations,
	placementAPI,
}

// Generate renders every dashboard as indented JSON, keyed by file name
// (<uid>.json). The committed files are its output.
func Generate() (map[string][]byte, error) {
	out := make(map[string][]byte, len(definitions))
	for _, def := range definitions {
		d := def()
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(d); err != nil {
			return nil, fmt.Errorf("encoding dashboard %s: %w", d.UID, err)
		}
		name := d.UID + ".json"
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("two dashboards with uid %s", d.UID)
		}
		out[name] = buf.Bytes()
	}
	return out, nil
}

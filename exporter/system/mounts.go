package system

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// mount is one line of a mount table.
type mount struct {
	Device, MountPoint, FSType string
	ReadOnly                   bool
}

// readMounts reads the mount table of PID 1, which is the host's when the
// agent shares the host's PID namespace, falling back to the reading
// process's own table (/proc/mounts) like node_exporter.
func readMounts(paths Paths) ([]mount, error) {
	var mounts []mount
	parse := func(data []byte) (err error) {
		mounts, err = parseMounts(string(data))
		return err
	}
	err := withFile(paths.proc("1", "mounts"), parse)
	if errors.Is(err, fs.ErrNotExist) {
		err = withFile(paths.proc("mounts"), parse)
	}
	if err != nil {
		return nil, fmt.Errorf("reading mount table: %w", err)
	}
	return mounts, nil
}

// parseMounts parses a /proc/<pid>/mounts table (fstab(5) format).
func parseMounts(data string) ([]mount, error) {
	var out []mount
	for line := range strings.Lines(data) {
		parts := strings.Fields(line)
		if len(parts) == 0 {
			continue
		}
		if len(parts) < 4 {
			return nil, fmt.Errorf("parsing mount line %q: want at least 4 fields, got %d", strings.TrimSpace(line), len(parts))
		}
		m := mount{
			Device:     unescapeMountField(parts[0]),
			MountPoint: unescapeMountField(parts[1]),
			FSType:     parts[2],
		}
		for _, opt := range strings.Split(parts[3], ",") {
			if opt == "ro" {
				m.ReadOnly = true
				break
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// unescapeMountField undoes the kernel's octal escaping of space, tab,
// newline and backslash in mount table fields ("\040" → " ").
func unescapeMountField(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

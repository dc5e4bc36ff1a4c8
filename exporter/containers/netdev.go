package containers

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// interfaceStats are the counters of one network interface.
type interfaceStats struct {
	Name                                  string
	RxBytes, RxPackets, RxErrors, RxDrops uint64
	TxBytes, TxPackets, TxErrors, TxDrops uint64
}

// readNetDev reads procfs/<pid>/net/dev, which shows the interfaces of the
// process's network namespace, that is the container's. Loopback is skipped:
// it is traffic inside the container.
func readNetDev(r *fileReader, procfs string, pid int) ([]interfaceStats, error) {
	path := filepath.Join(procfs, strconv.Itoa(pid), "net", "dev")
	data, err := r.read(path)
	if err != nil {
		return nil, err
	}
	return parseNetDev(string(data), path)
}

func parseNetDev(data, path string) ([]interfaceStats, error) {
	var out []interfaceStats
	lines := strings.Split(data, "\n")
	for i, line := range lines {
		if i < 2 || strings.TrimSpace(line) == "" {
			continue // two header lines
		}
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("parsing %s: line %d has no interface name", path, i+1)
		}
		name = strings.TrimSpace(name)
		if name == "lo" {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) < 16 {
			return nil, fmt.Errorf("parsing %s: interface %s has %d fields, want 16", path, name, len(fields))
		}
		var v [16]uint64
		for j := range v {
			n, err := strconv.ParseUint(fields[j], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("parsing %s: interface %s field %d: %w", path, name, j+1, err)
			}
			v[j] = n
		}
		out = append(out, interfaceStats{
			Name:    name,
			RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDrops: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDrops: v[11],
		})
	}
	return out, nil
}

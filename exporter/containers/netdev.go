package containers

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
)

// interfaceStats are the counters of one network interface.
type interfaceStats struct {
	Name                                  string
	RxBytes, RxPackets, RxErrors, RxDrops uint64
	TxBytes, TxPackets, TxErrors, TxDrops uint64
}

// netDevPath is the file readNetDev reads for process pid.
func netDevPath(procfs string, pid int) string {
	return filepath.Join(procfs, strconv.Itoa(pid), "net", "dev")
}

// readNetDev reads procfs/<pid>/net/dev, which shows the interfaces of the
// process's network namespace, that is the container's. Loopback is skipped:
// it is traffic inside the container. The file is opened for each read and
// read to its end: unlike a cgroup file it comes one line at a time, so a
// short read does not mean the end (a proxy on many networks has more than
// one page of interfaces), and keeping it open would keep a stopped
// container's namespace alive.
func readNetDev(r *fileReader, path string) ([]interfaceStats, error) {
	data, err := r.read(path)
	if err != nil {
		return nil, err
	}
	return parseNetDev(data, path)
}

func parseNetDev(data []byte, path string) ([]interfaceStats, error) {
	var out []interfaceStats
	for i := 1; len(data) > 0; i++ {
		var line []byte
		line, data = cutLine(data)
		if i <= 2 || len(bytes.TrimSpace(line)) == 0 {
			continue // two header lines
		}
		name, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return nil, fmt.Errorf("parsing %s: line %d has no interface name", path, i)
		}
		name = bytes.TrimSpace(name)
		if string(name) == "lo" {
			continue
		}
		var v [16]uint64
		for j := range v {
			rest = bytes.TrimLeft(rest, " ")
			end := bytes.IndexByte(rest, ' ')
			if end < 0 {
				end = len(rest)
			}
			if end == 0 {
				return nil, fmt.Errorf("parsing %s: interface %s has %d fields, want 16", path, name, j)
			}
			n, err := strconv.ParseUint(string(rest[:end]), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("parsing %s: interface %s field %d: %w", path, name, j+1, err)
			}
			v[j], rest = n, rest[end:]
		}
		out = append(out, interfaceStats{
			Name:    string(name),
			RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDrops: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDrops: v[11],
		})
	}
	return out, nil
}

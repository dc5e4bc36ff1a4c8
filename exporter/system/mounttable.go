package system

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/shirou/gopsutil/v4/disk"
)

// mountTable lists the mounted filesystems with gopsutil's
// disk.Partitions, and parses the table again only when it changed.
//
// Parsing the whole table every scrape was the filesystem collector's
// largest CPU cost on hosts with many container mounts, and the table
// rarely changes between scrapes. Reading the file is cheap next to that,
// so each scrape reads it and compares it with the text of the last parse.
// (Polling mountinfo for POLLPRI, the kernel's change signal, is cheaper
// still but misses some unmounts on Linux 6.18, which would leave a stale
// table.)
type mountTable struct {
	paths Paths

	mu         sync.Mutex
	parsed     []byte // the mountinfo text partitions were parsed from
	partitions []disk.PartitionStat
	scratch    bytes.Buffer
}

// list returns the current mount table. ctx carries gopsutil's paths.
func (t *mountTable) list(ctx context.Context) ([]disk.PartitionStat, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	current, ok := t.read()
	if ok && t.parsed != nil && bytes.Equal(current, t.parsed) {
		return t.partitions, nil
	}
	// all=true: node_exporter's own excludes decide, not gopsutil's list
	// of "real" filesystems.
	partitions, err := disk.PartitionsWithContext(ctx, true)
	if err != nil {
		t.parsed = nil
		return nil, fmt.Errorf("reading mount table: %w", err)
	}
	t.partitions = partitions
	t.parsed = nil
	if ok {
		// A change between our read and gopsutil's only makes the next
		// scrape parse again.
		t.parsed = append(t.parsed[:0], current...)
	}
	return partitions, nil
}

// read returns the text of the mountinfo gopsutil reads (PID 1's, else the
// reading process's), valid until the next call; false if neither can be
// read.
func (t *mountTable) read() ([]byte, bool) {
	for _, pid := range []string{"1", "self"} {
		f, err := os.Open(t.paths.proc(pid, "mountinfo"))
		if err != nil {
			continue
		}
		t.scratch.Reset()
		_, err = t.scratch.ReadFrom(io.LimitReader(f, 64<<20))
		f.Close()
		if err != nil {
			return nil, false
		}
		return t.scratch.Bytes(), true
	}
	return nil, false
}

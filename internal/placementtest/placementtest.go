// Package placementtest holds the fixtures the placement packages' tests
// share: a fixed clock, an idle server, a fleet.
package placementtest

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/placement"
)

// Sizes.
const (
	GiB = 1 << 30
	MiB = 1 << 20
)

// Now is the tests' fixed present.
var Now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// Server is a fresh, idle app server: 4 cores, 8 GiB, 100 GiB disk with a
// 0.80 threshold. With the default policy its usable capacity is 3.6 cores,
// 7.2 GiB memory and 80 GiB disk.
func Server(name string, mods ...func(*placement.ServerState)) *placement.ServerState {
	s := &placement.ServerState{
		Name:     name,
		Role:     placement.RoleApp,
		LastSeen: Now.Add(-5 * time.Second),
		Age:      5 * time.Second,
		CPU:      placement.CPUState{Cores: 4},
		Memory:   placement.MemoryState{TotalBytes: 8 * GiB, AvailableBytes: 8 * GiB},
		Disk:     placement.DiskState{SizeBytes: 100 * GiB, AvailableBytes: 100 * GiB, ThresholdRatio: 0.80},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

// Fleet is a snapshot taken at Now of servers.
func Fleet(servers ...*placement.ServerState) *placement.Snapshot {
	snap := &placement.Snapshot{Taken: Now, Servers: map[string]*placement.ServerState{}}
	for _, s := range servers {
		snap.Servers[s.Name] = s
	}
	return snap
}

// Busy sets a server's recent CPU and memory peaks (ratios 0..1).
func Busy(cpu float64, mem float64) func(*placement.ServerState) {
	return func(s *placement.ServerState) {
		s.CPU.PeakUtilisation = cpu
		s.Memory.PeakUsedBytes = mem * s.Memory.TotalBytes
	}
}

// Clock is a settable clock for expiry tests, starting at Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at Now.
func NewClock() *Clock { return &Clock{t: Now} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// WriteFile writes content to path or fails the test.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

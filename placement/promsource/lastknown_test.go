package promsource

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/placement"
)

// silentFleet answers as a Prometheus whose servers have all gone silent:
// last seen 10s ago, no current signal. A last-known query (it has an @)
// answers every signal of the servers it names, except that the first
// query naming s00 fails once.
type silentFleet struct {
	servers    int
	seen       time.Time // when every server was last seen
	lastKnown  atomic.Int64
	failedOnce atomic.Bool
}

var serverMatcher = regexp.MustCompile(`server=~"([^"]*)"`)

func (f *silentFleet) Query(_ context.Context, q string, _ time.Time) (model.Vector, error) {
	switch {
	case q == lastSeenQuery:
		var v model.Vector
		for i := range f.servers {
			v = append(v, sample(float64(f.seen.Unix()), "server", fmt.Sprintf("s%02d", i), "role", "app", "organization", "acme"))
		}
		return v, nil
	case !strings.Contains(q, " @ "):
		return nil, nil
	}
	f.lastKnown.Add(1)
	if strings.Contains(q, `s00|`) && f.failedOnce.CompareAndSwap(false, true) {
		return nil, errors.New("query timed out")
	}
	var v model.Vector
	for _, m := range serverMatcher.FindAllStringSubmatch(q, -1) {
		for _, name := range strings.Split(m[1], "|") {
			for rule := range serverSignals {
				v = append(v, sample(1, "__name__", rule, "server", name, "role", "app", "organization", "acme"))
			}
		}
	}
	return v, nil
}

// TestLastKnownRetriesFailedBatch: with more servers gone silent than one
// query reads, a failed query leaves only its own servers unknown, and
// they are asked again on the next snapshot while the others are kept.
func TestLastKnownRetriesFailedBatch(t *testing.T) {
	f := &silentFleet{servers: lastKnownBatch + 10, seen: time.Now().Add(-10 * time.Second)}
	s, err := NewSnapshotter(f, SnapshotterOptions{}, testenv.Logger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	count := func(snap *placement.Snapshot) (lastKnown, unknown int) {
		for _, st := range snap.Servers {
			switch st.ContainerUsage {
			case placement.LastKnown:
				lastKnown++
			case placement.Unknown:
				unknown++
			}
		}
		return lastKnown, unknown
	}
	snap, err := s.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if lk, unk := count(snap); lk != 10 || unk != lastKnownBatch || f.lastKnown.Load() != 2 {
		t.Fatalf("first snapshot: %d last known, %d unknown after %d queries; want 10, %d after 2", lk, unk, f.lastKnown.Load(), lastKnownBatch)
	}
	snap, err = s.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if lk, unk := count(snap); lk != lastKnownBatch+10 || unk != 0 || f.lastKnown.Load() != 3 {
		t.Errorf("second snapshot: %d last known, %d unknown after %d queries; want all %d, the failed batch asked once more (3 queries)",
			lk, unk, f.lastKnown.Load(), lastKnownBatch+10)
	}
	if acme := snap.Organizations["acme"]; acme == nil || len(acme.UnknownServers) != 0 || len(acme.LastKnownServers) != lastKnownBatch+10 {
		t.Errorf("acme: %+v", acme)
	}
}

package api

import (
	"github.com/berth-dev/berth/placement/policy"

	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/placement"
)

// TestConcurrentReservingPlacements: 50 simultaneous reserving placements
// over HTTP against a fleet with room for exactly 10 → exactly 10 placed,
// no server over capacity.
func TestConcurrentReservingPlacements(t *testing.T) {
	p := policy.Default()
	p.Fit.MaxUtilisation.Memory = 1 // room is exactly what is free
	e := newTestEnv(t, withPolicy(policy.NewStaticStore(p)))
	now := time.Now()
	snap := &placement.Snapshot{Taken: now, Servers: map[string]*placement.ServerState{}}
	for _, name := range []string{"a", "b"} {
		s := server(name, "app", "", 8, 5.5, 100, time.Second, now)
		s.Memory.PeakUsedBytes, s.Memory.AvailableBytes = 0, s.Memory.TotalBytes
		s.CPU.PeakUtilisation = 0
		s.Containers = placement.ContainerState{}
		snap.Servers[name] = s
	}
	e.fleet.mu.Lock()
	e.fleet.snap = snap
	e.fleet.mu.Unlock()

	const requests = 50
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		placed = map[string]int{}
		errs   []string
	)
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, b, _ := e.do("POST", "/api/v1/placements", fmt.Sprintf(`{"requirements":{"memory":"1g"},"reserve":true,"idempotency_key":"k-%d"}`, i))
			var d PlacementResponse
			mu.Lock()
			defer mu.Unlock()
			if status != 200 || json.Unmarshal(b, &d) != nil {
				errs = append(errs, fmt.Sprintf("%d %s", status, b))
				return
			}
			if d.Placed {
				placed[d.Chosen]++
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d requests failed, first: %s", len(errs), errs[0])
	}
	if placed["a"] != 5 || placed["b"] != 5 {
		t.Errorf("placed %v, want exactly 5 on each server", placed)
	}
	var list ReservationList
	e.json("GET", "/api/v1/reservations", "", 200, &list)
	if len(list.Reservations) != 10 {
		t.Errorf("%d reservations, want 10", len(list.Reservations))
	}
	// Retrying one that succeeded returns its reservation, not a new one.
	var first PlacementResponse
	e.json("POST", "/api/v1/placements", `{"requirements":{"memory":"1g"},"reserve":true,"idempotency_key":"`+list.Reservations[0].IdempotencyKey+`"}`, 200, &first)
	if !first.Replayed || first.Reservation.ID != list.Reservations[0].ID {
		t.Errorf("retry: %+v", first)
	}
}

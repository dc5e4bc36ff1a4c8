package reservation

import (
	"github.com/berth-dev/berth/placement"

	"fmt"
	"testing"
	"time"
)

// BenchmarkReservationChange measures what persistence adds to a reserving
// placement: one op inserts a reservation and releases it (two changes,
// each written before it returns) with 250 others open, group-synced as
// berth-placement runs by default.
func BenchmarkReservationChange(b *testing.B) {
	s, err := Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.SyncEvery(time.Second, nil)
	d := &placement.Decision{Kind: placement.KindDeployment, Strategy: "spread", Chosen: "sim-0001", Summary: "chosen sim-0001: most free"}
	insert := func(key string) placement.Reservation {
		var out placement.Reservation
		err := s.Update(func(tx *Tx) error {
			var err error
			out, err = tx.Insert(placement.Reservation{Kind: placement.KindDeployment, Server: "sim-0001", Organization: "org-1",
				Resources: placement.Resources{CPU: 0.25, Memory: 128 << 20, Disk: 256 << 20}, State: placement.StateActive,
				IdempotencyKey: key, ExpiresAt: tx.Now().Add(time.Hour)}, "fp-0123456789abcdef", d)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	for i := range 250 {
		insert(fmt.Sprintf("open-%d", i))
	}
	for b.Loop() {
		if _, err := s.Release(insert("").ID); err != nil {
			b.Fatal(err)
		}
	}
}

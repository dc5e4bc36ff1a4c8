package placement

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkReservationChange measures what persistence adds to a reserving
// placement: one op inserts a reservation and releases it (two changes,
// each written before it returns) with 250 others open, group-synced as
// berth-placement runs by default.
func BenchmarkReservationChange(b *testing.B) {
	s, err := OpenReservationStore(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.SyncEvery(time.Second, nil)
	d := &Decision{Kind: KindDeployment, Strategy: "spread", Chosen: "sim-0001", Summary: "chosen sim-0001: most free"}
	insert := func(key string) Reservation {
		var out Reservation
		err := s.Update(func(tx *ReservationTx) error {
			var err error
			out, err = tx.Insert(Reservation{Kind: KindDeployment, Server: "sim-0001", Organization: "org-1",
				Resources: Resources{CPU: 0.25, Memory: 128 << 20, Disk: 256 << 20}, State: StateActive,
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

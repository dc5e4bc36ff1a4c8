// Package reservationtest opens reservation stores for the tests of the
// packages that decide with them (schedule, build, quota).
package reservationtest

import (
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/placementtest"
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/reservation"
)

// Open opens a store in dir on clock c, closed when the test ends.
func Open(t testing.TB, dir string, c *placementtest.Clock) *reservation.Store {
	t.Helper()
	s, err := reservation.Open(dir, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Insert writes r (expiring in 10 minutes unless it says otherwise).
func Insert(t testing.TB, s *reservation.Store, r placement.Reservation) placement.Reservation {
	t.Helper()
	var out placement.Reservation
	err := s.Update(func(tx *reservation.Tx) error {
		var err error
		if r.ExpiresAt.IsZero() {
			r.ExpiresAt = tx.Now().Add(10 * time.Minute)
		}
		out, err = tx.Insert(r, "fp", nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

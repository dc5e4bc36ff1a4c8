package placement

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: testNow} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openStore(t *testing.T, dir string, c *clock) *ReservationStore {
	t.Helper()
	s, err := OpenReservationStore(dir, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func insert(t *testing.T, s *ReservationStore, r Reservation) Reservation {
	t.Helper()
	var out Reservation
	err := s.Update(func(tx *ReservationTx) error {
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

func TestReservationsPersistAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s := openStore(t, dir, c)
	a := insert(t, s, Reservation{Kind: KindDeployment, Server: "a", Organization: "acme", ApplicationID: "app1",
		Resources: Resources{CPU: 1.5, Memory: 2 * gib, Disk: gib}, State: StateActive, IdempotencyKey: "k1", Score: 42})
	b := insert(t, s, Reservation{Kind: KindBuild, Server: "b", State: StateQueued})
	gone := insert(t, s, Reservation{Kind: KindDeployment, Server: "c", State: StateActive})
	if _, err := s.Release(gone.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(b.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.ID, "rsv_") || a.ID == b.ID {
		t.Errorf("ids %q %q", a.ID, b.ID)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen as a restarted process would.
	s2 := openStore(t, dir, c)
	got := s2.List()
	if len(got) != 2 {
		t.Fatalf("after reopen: %+v", got)
	}
	ga, err := s2.Get(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ga.Resources != a.Resources || ga.Organization != "acme" || ga.ApplicationID != "app1" || ga.Score != 42 ||
		!ga.ExpiresAt.Equal(a.ExpiresAt) || !ga.CreatedAt.Equal(testNow) {
		t.Errorf("reopened %+v, want %+v", ga, a)
	}
	gb, _ := s2.Get(b.ID)
	if gb.State != StateActive || gb.StartedAt == nil || !gb.ExpiresAt.Equal(testNow.Add(time.Hour)) {
		t.Errorf("started build after reopen: %+v", gb)
	}
	if _, err := s2.Get(gone.ID); !errors.Is(err, ErrReservationNotFound) {
		t.Errorf("released reservation came back: %v", err)
	}
	// The idempotency key survives too.
	s2.Update(func(tx *ReservationTx) error {
		r, answer, fp, ok := tx.Lookup("k1")
		if !ok || r.ID != a.ID || fp != "fp" || answer.Chosen != "a" || answer.Score != 42 {
			t.Errorf("lookup after reopen = %+v %+v %q %v", r, answer, fp, ok)
		}
		return nil
	})
}

func TestReservationsLockAndCorruption(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s := openStore(t, dir, c)
	if _, err := OpenReservationStore(dir, c.Now); err == nil || !strings.Contains(err.Error(), "another berth-placement") {
		t.Errorf("second open of a locked directory: %v", err)
	}
	insert(t, s, Reservation{Kind: KindDeployment, Server: "a", State: StateActive})
	s.Close()

	// A temp file left by a crash mid-write is ignored and removed.
	tmp := filepath.Join(dir, reservationsFile+".tmp")
	writeFile(t, tmp, "{garbage")
	s = openStore(t, dir, c)
	if n := len(s.List()); n != 1 {
		t.Errorf("with a leftover temp file: %d reservations", n)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("temp file still there: %v", err)
	}
	s.Close()

	writeFile(t, filepath.Join(dir, reservationsFile), "{not json")
	if _, err := OpenReservationStore(dir, c.Now); err == nil || !strings.Contains(err.Error(), "parse reservations file") {
		t.Errorf("corrupt file: err = %v, want a refusal", err)
	}
	writeFile(t, filepath.Join(dir, reservationsFile), `{"version": 9, "reservations": []}`)
	if _, err := OpenReservationStore(dir, c.Now); err == nil || !strings.Contains(err.Error(), "unsupported version 9") {
		t.Errorf("future version: err = %v", err)
	}
}

func TestReservationsExpire(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s := openStore(t, dir, c)
	short := insert(t, s, Reservation{Kind: KindDeployment, Server: "a", State: StateActive, IdempotencyKey: "short", ExpiresAt: testNow.Add(time.Minute)})
	long := insert(t, s, Reservation{Kind: KindDeployment, Server: "a", State: StateActive, ExpiresAt: testNow.Add(time.Hour)})

	c.Advance(59 * time.Second)
	if n := len(s.List()); n != 2 {
		t.Fatalf("before expiry: %d", n)
	}
	c.Advance(time.Second)
	if got := s.List(); len(got) != 1 || got[0].ID != long.ID {
		t.Fatalf("at expiry: %+v", got)
	}
	if _, err := s.Get(short.ID); !errors.Is(err, ErrReservationNotFound) {
		t.Errorf("expired reservation still found: %v", err)
	}
	s.Update(func(tx *ReservationTx) error {
		if _, _, _, ok := tx.Lookup("short"); ok {
			t.Error("expired reservation's idempotency key still answers")
		}
		return nil
	})

	// An expired reservation still on disk (expiry is not written eagerly)
	// is dropped on load.
	s.Close()
	c.Advance(time.Hour)
	s2 := openStore(t, dir, c)
	if n := len(s2.List()); n != 0 {
		t.Errorf("after reopen past every expiry: %d", n)
	}
	if n := s2.Expire(); n != 0 {
		t.Errorf("Expire = %d", n)
	}
}

func TestReservationsConfirmStartRelease(t *testing.T) {
	c := newClock()
	s := openStore(t, t.TempDir(), c)
	dep := insert(t, s, Reservation{Kind: KindDeployment, Server: "a", State: StateActive, ExpiresAt: testNow.Add(time.Hour)})
	build := insert(t, s, Reservation{Kind: KindBuild, Server: "b", State: StateQueued})

	if _, err := s.ReleaseObserved(dep.ID); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("release-observed before confirm: %v", err)
	}
	c.Advance(time.Minute)
	conf, err := s.Confirm(dep.ID, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if conf.ConfirmedAt == nil || !conf.ConfirmedAt.Equal(testNow.Add(time.Minute)) || !conf.ExpiresAt.Equal(testNow.Add(6*time.Minute)) {
		t.Errorf("confirmed = %+v", conf)
	}
	// Confirming twice does not extend the grace.
	c.Advance(time.Minute)
	again, err := s.Confirm(dep.ID, 5*time.Minute)
	if err != nil || !again.ExpiresAt.Equal(conf.ExpiresAt) {
		t.Errorf("second confirm = %+v, %v", again, err)
	}
	if _, err := s.Confirm(build.ID, time.Minute); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("confirm of a build: %v", err)
	}
	if _, err := s.Start(dep.ID, 0); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("start of a deployment: %v", err)
	}
	st, err := s.Start(build.ID, 0)
	if err != nil || st.State != StateActive || !st.ExpiresAt.Equal(build.ExpiresAt) {
		t.Errorf("start = %+v, %v", st, err)
	}
	if _, err := s.Start(build.ID, 0); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("second start: %v", err)
	}

	// Grace elapses: the confirmed reservation stops counting.
	c.Advance(4 * time.Minute)
	if _, err := s.Get(dep.ID); !errors.Is(err, ErrReservationNotFound) {
		t.Errorf("confirmed reservation outlived its grace: %v", err)
	}
	dep2 := insert(t, s, Reservation{Kind: KindDeployment, Server: "a", State: StateActive})
	if _, err := s.Confirm(dep2.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReleaseObserved(dep2.ID); err != nil {
		t.Errorf("release-observed: %v", err)
	}
	if _, err := s.Release(build.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Release(build.ID); !errors.Is(err, ErrReservationNotFound) {
		t.Errorf("double release: %v", err)
	}
	if n := len(s.List()); n != 0 {
		t.Errorf("left: %d", n)
	}
}

func TestReservationsInsertValidation(t *testing.T) {
	c := newClock()
	s := openStore(t, t.TempDir(), c)
	insert(t, s, Reservation{Kind: KindDeployment, Server: "a", State: StateActive, IdempotencyKey: "k"})
	for _, r := range []Reservation{
		{Kind: KindDeployment, Server: "a", State: StateActive, IdempotencyKey: "k", ExpiresAt: testNow.Add(time.Minute)},
		{Kind: KindDeployment, State: StateActive, ExpiresAt: testNow.Add(time.Minute)},
		{Kind: KindDeployment, Server: "a", State: StateActive, ExpiresAt: testNow},
	} {
		err := s.Update(func(tx *ReservationTx) error {
			_, err := tx.Insert(r, "", nil)
			return err
		})
		if err == nil {
			t.Errorf("insert of %+v succeeded", r)
		}
	}
	// A failing transaction leaves nothing behind.
	err := s.Update(func(tx *ReservationTx) error {
		if _, err := tx.Insert(Reservation{Kind: KindDeployment, Server: "z", State: StateActive, ExpiresAt: testNow.Add(time.Minute)}, "", nil); err != nil {
			return err
		}
		return errors.New("changed my mind")
	})
	if err == nil || len(s.List()) != 1 {
		t.Errorf("rolled back transaction: err %v, %d reservations", err, len(s.List()))
	}
}

// TestReservationsWriteFailureUndone: a change that cannot be written is
// not acknowledged and does not stay in memory either.
func TestReservationsWriteFailureUndone(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s := openStore(t, dir, c)
	kept := insert(t, s, Reservation{Kind: KindDeployment, Server: "a", State: StateActive, IdempotencyKey: "kept"})

	// A directory where the temp file goes makes every write fail.
	blocker := filepath.Join(dir, reservationsFile+".tmp")
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o750); err != nil {
		t.Fatal(err)
	}
	err := s.Update(func(tx *ReservationTx) error {
		_, err := tx.Insert(Reservation{Kind: KindDeployment, Server: "b", State: StateActive, IdempotencyKey: "new", ExpiresAt: testNow.Add(time.Minute)}, "", nil)
		return err
	})
	if err == nil {
		t.Fatal("insert succeeded although the write failed")
	}
	if got := s.List(); len(got) != 1 || got[0].ID != kept.ID {
		t.Errorf("after a failed insert: %+v", got)
	}
	s.Update(func(tx *ReservationTx) error {
		if _, _, _, ok := tx.Lookup("new"); ok {
			t.Error("failed insert left its idempotency key")
		}
		return nil
	})
	if _, err := s.Release(kept.ID); err == nil {
		t.Fatal("release succeeded although the write failed")
	}
	if _, err := s.Confirm(kept.ID, time.Minute); err == nil {
		t.Fatal("confirm succeeded although the write failed")
	}
	got, err := s.Get(kept.ID)
	if err != nil || got.ConfirmedAt != nil || !got.ExpiresAt.Equal(kept.ExpiresAt) {
		t.Errorf("after failed release and confirm: %+v, %v", got, err)
	}
	s.Update(func(tx *ReservationTx) error {
		if _, _, _, ok := tx.Lookup("kept"); !ok {
			t.Error("failed release dropped the idempotency key")
		}
		return nil
	})

	if err := os.RemoveAll(blocker); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Release(kept.ID); err != nil {
		t.Fatalf("release once writable: %v", err)
	}
	s.Close()
	if n := len(openStore(t, dir, c).List()); n != 0 {
		t.Errorf("after reopen: %d reservations", n)
	}
}

// TestReservationsGroupSync: with SyncEvery a change is written (so a
// killed process loses nothing) before it is acknowledged, and fsynced by
// the background loop or on Close.
func TestReservationsGroupSync(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s, err := OpenReservationStore(dir, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	s.SyncEvery(time.Hour) // only Close syncs within this test
	a := insert(t, s, Reservation{Kind: KindDeployment, Server: "a", State: StateActive, Resources: Resources{CPU: 1}})

	// What a process killed right now would leave: the file already holds it.
	data, err := os.ReadFile(filepath.Join(dir, reservationsFile))
	if err != nil || !strings.Contains(string(data), a.ID) {
		t.Fatalf("reservation %s not written before acknowledgement: %v\n%s", a.ID, err, data)
	}
	s.mu.RLock()
	dirty := s.dirty
	s.mu.RUnlock()
	if !dirty {
		t.Error("a change written without fsync is not marked for the next sync")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.dirty {
		t.Error("Close left changes unsynced")
	}
	s2 := openStore(t, dir, c)
	if _, err := s2.Get(a.ID); err != nil {
		t.Errorf("after reopen: %v", err)
	}
}

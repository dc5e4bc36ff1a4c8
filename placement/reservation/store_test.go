package reservation

import (
	"github.com/berth-dev/berth/internal/placementtest"
	"github.com/berth-dev/berth/placement"

	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func openStore(t *testing.T, dir string, c *placementtest.Clock) *Store {
	t.Helper()
	s, err := Open(dir, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func insert(t *testing.T, s *Store, r placement.Reservation) placement.Reservation {
	t.Helper()
	var out placement.Reservation
	err := s.Update(func(tx *Tx) error {
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
	c := placementtest.NewClock()
	s := openStore(t, dir, c)
	a := insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "a", Organization: "acme", ApplicationID: "app1",
		Resources: placement.Resources{CPU: 1.5, Memory: 2 * placementtest.GiB, Disk: placementtest.GiB}, State: placement.StateActive, IdempotencyKey: "k1", Score: 42})
	b := insert(t, s, placement.Reservation{Kind: placement.KindBuild, Server: "b", State: placement.StateQueued})
	gone := insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "c", State: placement.StateActive})
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
		!ga.ExpiresAt.Equal(a.ExpiresAt) || !ga.CreatedAt.Equal(placementtest.Now) {
		t.Errorf("reopened %+v, want %+v", ga, a)
	}
	gb, _ := s2.Get(b.ID)
	if gb.State != placement.StateActive || gb.StartedAt == nil || !gb.ExpiresAt.Equal(placementtest.Now.Add(time.Hour)) {
		t.Errorf("started build after reopen: %+v", gb)
	}
	if _, err := s2.Get(gone.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("released reservation came back: %v", err)
	}
	// The idempotency key survives too.
	s2.Update(func(tx *Tx) error {
		r, answer, fp, ok := tx.Lookup("k1")
		if !ok || r.ID != a.ID || fp != "fp" || answer.Chosen != "a" || answer.Score != 42 {
			t.Errorf("lookup after reopen = %+v %+v %q %v", r, answer, fp, ok)
		}
		return nil
	})
}

func TestReservationsLockAndCorruption(t *testing.T) {
	dir := t.TempDir()
	c := placementtest.NewClock()
	s := openStore(t, dir, c)
	if _, err := Open(dir, c.Now); err == nil || !strings.Contains(err.Error(), "another berth-placement") {
		t.Errorf("second open of a locked directory: %v", err)
	}
	insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "a", State: placement.StateActive})
	s.Close()

	// A temp file left by a crash mid-write is ignored and removed.
	tmp := filepath.Join(dir, reservationsFile+".tmp")
	placementtest.WriteFile(t, tmp, "{garbage")
	s = openStore(t, dir, c)
	if n := len(s.List()); n != 1 {
		t.Errorf("with a leftover temp file: %d reservations", n)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("temp file still there: %v", err)
	}
	s.Close()

	placementtest.WriteFile(t, filepath.Join(dir, reservationsFile), "{not json")
	if _, err := Open(dir, c.Now); err == nil || !strings.Contains(err.Error(), "parse reservations file") {
		t.Errorf("corrupt file: err = %v, want a refusal", err)
	}
	placementtest.WriteFile(t, filepath.Join(dir, reservationsFile), `{"version": 9, "reservations": []}`)
	if _, err := Open(dir, c.Now); err == nil || !strings.Contains(err.Error(), "unsupported version 9") {
		t.Errorf("future version: err = %v", err)
	}
}

func TestReservationsExpire(t *testing.T) {
	dir := t.TempDir()
	c := placementtest.NewClock()
	s := openStore(t, dir, c)
	short := insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "a", State: placement.StateActive, IdempotencyKey: "short", ExpiresAt: placementtest.Now.Add(time.Minute)})
	long := insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "a", State: placement.StateActive, ExpiresAt: placementtest.Now.Add(time.Hour)})

	c.Advance(59 * time.Second)
	if n := len(s.List()); n != 2 {
		t.Fatalf("before expiry: %d", n)
	}
	c.Advance(time.Second)
	if got := s.List(); len(got) != 1 || got[0].ID != long.ID {
		t.Fatalf("at expiry: %+v", got)
	}
	if _, err := s.Get(short.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired reservation still found: %v", err)
	}
	s.Update(func(tx *Tx) error {
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
	c := placementtest.NewClock()
	s := openStore(t, t.TempDir(), c)
	dep := insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "a", State: placement.StateActive, ExpiresAt: placementtest.Now.Add(time.Hour)})
	build := insert(t, s, placement.Reservation{Kind: placement.KindBuild, Server: "b", State: placement.StateQueued})

	if _, err := s.ReleaseObserved(dep.ID); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("release-observed before confirm: %v", err)
	}
	c.Advance(time.Minute)
	conf, err := s.Confirm(dep.ID, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if conf.ConfirmedAt == nil || !conf.ConfirmedAt.Equal(placementtest.Now.Add(time.Minute)) || !conf.ExpiresAt.Equal(placementtest.Now.Add(6*time.Minute)) {
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
	if err != nil || st.State != placement.StateActive || !st.ExpiresAt.Equal(build.ExpiresAt) {
		t.Errorf("start = %+v, %v", st, err)
	}
	if _, err := s.Start(build.ID, 0); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("second start: %v", err)
	}

	// Grace elapses: the confirmed reservation stops counting.
	c.Advance(4 * time.Minute)
	if _, err := s.Get(dep.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("confirmed reservation outlived its grace: %v", err)
	}
	dep2 := insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "a", State: placement.StateActive})
	if _, err := s.Confirm(dep2.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReleaseObserved(dep2.ID); err != nil {
		t.Errorf("release-observed: %v", err)
	}
	if _, err := s.Release(build.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Release(build.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("double release: %v", err)
	}
	if n := len(s.List()); n != 0 {
		t.Errorf("left: %d", n)
	}
}

func TestReservationsInsertValidation(t *testing.T) {
	c := placementtest.NewClock()
	s := openStore(t, t.TempDir(), c)
	insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "a", State: placement.StateActive, IdempotencyKey: "k"})
	for _, r := range []placement.Reservation{
		{Kind: placement.KindDeployment, Server: "a", State: placement.StateActive, IdempotencyKey: "k", ExpiresAt: placementtest.Now.Add(time.Minute)},
		{Kind: placement.KindDeployment, State: placement.StateActive, ExpiresAt: placementtest.Now.Add(time.Minute)},
		{Kind: placement.KindDeployment, Server: "a", State: placement.StateActive, ExpiresAt: placementtest.Now},
	} {
		err := s.Update(func(tx *Tx) error {
			_, err := tx.Insert(r, "", nil)
			return err
		})
		if err == nil {
			t.Errorf("insert of %+v succeeded", r)
		}
	}
	// A failing transaction leaves nothing behind.
	err := s.Update(func(tx *Tx) error {
		if _, err := tx.Insert(placement.Reservation{Kind: placement.KindDeployment, Server: "z", State: placement.StateActive, ExpiresAt: placementtest.Now.Add(time.Minute)}, "", nil); err != nil {
			return err
		}
		return errors.New("changed my mind")
	})
	if err == nil || len(s.List()) != 1 {
		t.Errorf("rolled back transaction: err %v, %d reservations", err, len(s.List()))
	}
}

// TestReservationsWriteFailureUndone: a change that cannot be written is
// not acknowledged, does not stay in memory, and is not in the files.
func TestReservationsWriteFailureUndone(t *testing.T) {
	dir := t.TempDir()
	c := placementtest.NewClock()
	s := openStore(t, dir, c)
	kept := insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "a", State: placement.StateActive, IdempotencyKey: "kept"})

	// The journal's file failing (as on EIO) makes the append fail; the
	// store then compacts instead, and a directory where the snapshot's
	// temp file goes makes that fail too.
	blocker := filepath.Join(dir, reservationsFile+".tmp")
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o750); err != nil {
		t.Fatal(err)
	}
	s.journal.File().Close()
	err := s.Update(func(tx *Tx) error {
		_, err := tx.Insert(placement.Reservation{Kind: placement.KindDeployment, Server: "b", State: placement.StateActive, IdempotencyKey: "new", ExpiresAt: placementtest.Now.Add(time.Minute)}, "", nil)
		return err
	})
	if err == nil {
		t.Fatal("insert succeeded although the write failed")
	}
	if got := s.List(); len(got) != 1 || got[0].ID != kept.ID {
		t.Errorf("after a failed insert: %+v", got)
	}
	s.Update(func(tx *Tx) error {
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
	s.Update(func(tx *Tx) error {
		if _, _, _, ok := tx.Lookup("kept"); !ok {
			t.Error("failed release dropped the idempotency key")
		}
		return nil
	})
	// What a process killed now would leave: only the acknowledged change.
	if got := openStore(t, crashCopy(t, dir), c).List(); len(got) != 1 || got[0].ID != kept.ID || got[0].ConfirmedAt != nil {
		t.Errorf("files after failed writes: %+v", got)
	}

	if err := os.RemoveAll(blocker); err != nil {
		t.Fatal(err)
	}
	// Writable again: this change compacts (the journal was unusable) and
	// the following ones append to the emptied journal.
	if _, err := s.Confirm(kept.ID, time.Hour); err != nil {
		t.Fatalf("confirm once writable: %v", err)
	}
	if n := journalLines(t, dir); n != 0 {
		t.Errorf("journal after compaction: %d lines", n)
	}
	if _, err := s.Release(kept.ID); err != nil {
		t.Fatalf("release once writable: %v", err)
	}
	if n := journalLines(t, dir); n != 1 {
		t.Errorf("journal after one more change: %d lines", n)
	}
	s.Close()
	if n := len(openStore(t, dir, c).List()); n != 0 {
		t.Errorf("after reopen: %d reservations", n)
	}
}

// TestReservationsAppendFailureCutBack: an append that fails half-way is
// cut back, so the change reported failed is not replayed and the next
// line does not glue onto a partial one.
func TestReservationsAppendFailureCutBack(t *testing.T) {
	dir := t.TempDir()
	c := placementtest.NewClock()
	s := openStore(t, dir, c)
	a := insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "a", State: placement.StateActive})
	size := s.journal.Size()

	// A file size limit a few bytes past the journal's end makes the next
	// write(2) short and the one after it fail (EFBIG; Go ignores SIGXFSZ).
	// No test in this package runs in parallel with this one.
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	limited := old
	limited.Cur = uint64(size) + 10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limited); err != nil {
		t.Skipf("cannot limit the file size: %v", err)
	}
	_, err := s.Release(a.ID)
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); rerr != nil {
		t.Fatal(rerr)
	}
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("release with the file size limited: %v, want EFBIG", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, journalFile)); err != nil || fi.Size() != size {
		t.Fatalf("journal after a failed append: %v bytes, want %d (%v)", fi.Size(), size, err)
	}
	if _, err := s.Get(a.ID); err != nil {
		t.Errorf("failed release was not undone: %v", err)
	}
	c.Advance(time.Second)
	b := insert(t, s, placement.Reservation{Kind: placement.KindBuild, Server: "b", State: placement.StateQueued})
	got := openStore(t, crashCopy(t, dir), c).List()
	if len(got) != 2 || got[0].ID != a.ID || got[1].ID != b.ID {
		t.Errorf("after reopen: %+v", got)
	}
}

// TestReservationsGroupSync: with SyncEvery a change is written (so a
// killed process loses nothing) before it is acknowledged, and fsynced by
// the background loop or on Close.
func TestReservationsGroupSync(t *testing.T) {
	dir := t.TempDir()
	c := placementtest.NewClock()
	s, err := Open(dir, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	s.SyncEvery(time.Hour, nil) // only Close syncs within this test
	a := insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "a", State: placement.StateActive, Resources: placement.Resources{CPU: 1}})

	// What a process killed right now would leave: the files already hold it.
	if _, err := openStore(t, crashCopy(t, dir), c).Get(a.ID); err != nil {
		t.Fatalf("reservation %s not written before acknowledgement: %v", a.ID, err)
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

// crashCopy copies the store's files in dir as they are now — what a
// process killed at this moment leaves — to a new directory (the copy
// is not locked, so the live store can stay open).
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	for _, name := range []string{reservationsFile, journalFile, reservationsFile + ".tmp"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) || (err == nil && !fi.Mode().IsRegular()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		placementtest.WriteFile(t, filepath.Join(out, name), string(data))
	}
	return out
}

func journalLines(t *testing.T, dir string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, journalFile))
	if err != nil {
		t.Fatal(err)
	}
	// Changes only: the first line is the header.
	return strings.Count(string(data), "\n") - 1
}

// TestReservationsJournal: each change appends one line and rewrites
// nothing; a restart after kill -9 replays them all, idempotency keys and
// expiry included.
func TestReservationsJournal(t *testing.T) {
	dir := t.TempDir()
	c := placementtest.NewClock()
	s := openStore(t, dir, c)
	snapshot, err := os.ReadFile(filepath.Join(dir, reservationsFile))
	if err != nil {
		t.Fatal(err)
	}
	a := insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "a", State: placement.StateActive, IdempotencyKey: "ka", ExpiresAt: placementtest.Now.Add(time.Hour)})
	c.Advance(time.Second)
	b := insert(t, s, placement.Reservation{Kind: placement.KindBuild, Server: "b", State: placement.StateQueued, ExpiresAt: placementtest.Now.Add(time.Hour)})
	c.Advance(time.Second)
	gone := insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "c", State: placement.StateActive, IdempotencyKey: "kgone"})
	c.Advance(time.Second)
	short := insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "d", State: placement.StateActive, ExpiresAt: c.Now().Add(time.Minute)})
	if _, err := s.Confirm(a.ID, 30*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(b.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Release(gone.ID); err != nil {
		t.Fatal(err)
	}
	// Two inserts in one transaction are one change: one line.
	c.Advance(time.Second)
	err = s.Update(func(tx *Tx) error {
		for _, server := range []string{"e", "f"} {
			if _, err := tx.Insert(placement.Reservation{Kind: placement.KindDeployment, Server: server, State: placement.StateActive, ExpiresAt: tx.Now().Add(time.Hour)}, "fp", nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := journalLines(t, dir); n != 8 {
		t.Errorf("journal has %d lines after 8 changes", n)
	}
	if now, err := os.ReadFile(filepath.Join(dir, reservationsFile)); err != nil || string(now) != string(snapshot) {
		t.Errorf("a change rewrote the snapshot (%v):\n%s", err, now)
	}

	c.Advance(time.Minute) // short expires
	want := s.List()
	if len(want) != 4 {
		t.Fatalf("open: %+v", want)
	}
	s2 := openStore(t, crashCopy(t, dir), c)
	if got := s2.List(); !equalReservations(got, want) {
		t.Errorf("replayed:\n%+v\nwant\n%+v", got, want)
	}
	if _, err := s2.Get(short.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired reservation replayed: %v", err)
	}
	s2.Update(func(tx *Tx) error {
		if r, _, _, ok := tx.Lookup("ka"); !ok || r.ID != a.ID {
			t.Errorf("idempotency key after replay: %+v %v", r, ok)
		}
		if _, _, _, ok := tx.Lookup("kgone"); ok {
			t.Error("released reservation's key replayed")
		}
		return nil
	})
}

func equalReservations(a, b []placement.Reservation) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.ID != y.ID || x.State != y.State || x.Server != y.Server || x.Resources != y.Resources ||
			x.IdempotencyKey != y.IdempotencyKey ||
			!x.CreatedAt.Equal(y.CreatedAt) || !x.ExpiresAt.Equal(y.ExpiresAt) ||
			(x.ConfirmedAt == nil) != (y.ConfirmedAt == nil) || (x.StartedAt == nil) != (y.StartedAt == nil) ||
			(x.ConfirmedAt != nil && !x.ConfirmedAt.Equal(*y.ConfirmedAt)) ||
			(x.StartedAt != nil && !x.StartedAt.Equal(*y.StartedAt)) {
			return false
		}
	}
	return true
}

// TestReservationsJournalTornTail: a last line a crash cut short is
// ignored and cut off; a bad line anywhere else refuses the start.
func TestReservationsJournalTornTail(t *testing.T) {
	dir := t.TempDir()
	c := placementtest.NewClock()
	s := openStore(t, dir, c)
	a := insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "a", State: placement.StateActive})
	s.Close()
	path := filepath.Join(dir, journalFile)
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	placementtest.WriteFile(t, path, string(whole)+`{"put":[{"id":"rsv_torn","kind":"deploy`)

	s = openStore(t, dir, c)
	if got := s.List(); len(got) != 1 || got[0].ID != a.ID {
		t.Fatalf("with a torn tail: %+v", got)
	}
	if data, _ := os.ReadFile(path); string(data) != string(whole) {
		t.Errorf("torn tail not cut off:\n%s", data)
	}
	c.Advance(time.Second)
	b := insert(t, s, placement.Reservation{Kind: placement.KindBuild, Server: "b", State: placement.StateQueued})
	s.Close()
	s = openStore(t, dir, c)
	if got := s.List(); len(got) != 2 || got[1].ID != b.ID {
		t.Errorf("after appending past a cut tail: %+v", got)
	}
	s.Close()

	for name, content := range map[string]string{
		"garbage line":      "{garbage\n" + string(whole),
		"empty change":      string(whole) + "{}\n",
		"record without id": string(whole) + `{"put":[{"server":"a"}]}` + "\n",
	} {
		placementtest.WriteFile(t, path, content)
		if _, err := Open(dir, c.Now); err == nil || !strings.Contains(err.Error(), "reservations: parse journal") {
			t.Errorf("%s: err = %v, want a refusal", name, err)
		}
	}
	placementtest.WriteFile(t, path, `{"generation":99}`+"\n")
	if _, err := Open(dir, c.Now); err == nil || !strings.Contains(err.Error(), "generation 99 is newer than the snapshot's") {
		t.Errorf("journal newer than the snapshot: err = %v, want a refusal", err)
	}
}

// TestReservationsVersion1Snapshot: a snapshot written before the journal
// existed is read and rewritten as version 2 before anything is appended,
// so that the older binary refuses the directory rather than ignore the
// journal.
func TestReservationsVersion1Snapshot(t *testing.T) {
	dir := t.TempDir()
	c := placementtest.NewClock()
	placementtest.WriteFile(t, filepath.Join(dir, reservationsFile), `{"version":1,"reservations":[`+
		`{"id":"rsv_old","kind":"deployment","server":"a","resources":{"cpu":1},"state":"active","idempotency_key":"k",`+
		`"created_at":"2026-11-26T11:59:00Z","expires_at":"2026-11-26T12:30:00Z","fingerprint":"fp"}]}`)
	s := openStore(t, dir, c)
	if got, err := s.Get("rsv_old"); err != nil || got.Resources.CPU != 1 {
		t.Fatalf("version 1 reservation: %+v, %v", got, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, reservationsFile))
	if err != nil || !strings.Contains(string(data), `"version":2,"generation":1`) || !strings.Contains(string(data), "rsv_old") {
		t.Errorf("snapshot after open: %v\n%s", err, data)
	}
	insert(t, s, placement.Reservation{Kind: placement.KindBuild, Server: "b", State: placement.StateQueued})
	s.Close()
	if n := len(openStore(t, dir, c).List()); n != 2 {
		t.Errorf("after reopen: %d reservations", n)
	}
}

// TestReservationsCompaction: a long journal is folded into the snapshot;
// a crash at any point of compaction loses and resurrects nothing.
func TestReservationsCompaction(t *testing.T) {
	dir := t.TempDir()
	c := placementtest.NewClock()
	s := openStore(t, dir, c)
	s.compactMin = 6
	var ids []string
	for _, key := range []string{"ka", "kb", "kc"} {
		c.Advance(time.Second)
		ids = append(ids, insert(t, s, placement.Reservation{Kind: placement.KindBuild, Server: "s", State: placement.StateQueued, IdempotencyKey: key}).ID)
	}
	if _, err := s.Start(ids[0], time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Release(ids[1]); err != nil {
		t.Fatal(err)
	}
	// Change until a change compacts (6 + 4 × open lines) instead of
	// appending, keeping the files as they were before that change.
	var before string
	var wantBefore []placement.Reservation
	compacts := func(change func()) bool {
		before, wantBefore = crashCopy(t, dir), s.List()
		c.Advance(time.Second)
		change()
		return journalLines(t, dir) == 0
	}
	for i := 0; ; i++ {
		if i == 50 {
			t.Fatal("the journal never compacted")
		}
		var r placement.Reservation
		if compacts(func() {
			r = insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "t", State: placement.StateActive})
		}) {
			break
		}
		if compacts(func() {
			if _, err := s.Release(r.ID); err != nil {
				t.Fatal(err)
			}
		}) {
			break
		}
	}
	want := s.List()
	after := crashCopy(t, dir)
	if got := openStore(t, after, c).List(); !equalReservations(got, want) {
		t.Errorf("after compaction:\n%+v\nwant\n%+v", got, want)
	}

	// Crash after the new snapshot was renamed in, before the journal was
	// truncated: the old journal, of the older generation, is ignored (the
	// snapshot holds all of it; replaying its puts would bring back what
	// the compacting change released).
	midway := t.TempDir()
	copyFile(t, filepath.Join(after, reservationsFile), filepath.Join(midway, reservationsFile))
	copyFile(t, filepath.Join(before, journalFile), filepath.Join(midway, journalFile))
	if got := openStore(t, midway, c).List(); !equalReservations(got, want) {
		t.Errorf("crash before truncating the journal:\n%+v\nwant\n%+v", got, want)
	}
	// Crash while the new snapshot was being written: the temp file is
	// dropped; the old state is whole, without the change that was never
	// acknowledged.
	early := t.TempDir()
	copyFile(t, filepath.Join(before, reservationsFile), filepath.Join(early, reservationsFile))
	copyFile(t, filepath.Join(before, journalFile), filepath.Join(early, journalFile))
	placementtest.WriteFile(t, filepath.Join(early, reservationsFile+".tmp"), `{"version":1,"reserv`)
	if got := openStore(t, early, c).List(); !equalReservations(got, wantBefore) {
		t.Errorf("crash while writing the snapshot:\n%+v\nwant\n%+v", got, wantBefore)
	}

	// Appending resumes after compaction.
	c.Advance(time.Second)
	want = append(want, insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "v", State: placement.StateActive}))
	if n := journalLines(t, dir); n != 1 {
		t.Errorf("journal after compaction and one change: %d lines", n)
	}
	s.Close()
	s = openStore(t, dir, c)
	if got := s.List(); !equalReservations(got, want) {
		t.Errorf("after reopen:\n%+v\nwant\n%+v", got, want)
	}
	s.Update(func(tx *Tx) error {
		if r, _, _, ok := tx.Lookup("kc"); !ok || r.ID != ids[2] {
			t.Errorf("idempotency key after compaction: %+v %v", r, ok)
		}
		return nil
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	placementtest.WriteFile(t, to, string(data))
}

// TestReservationsCompactionFailure: a compaction that fails is not
// acknowledged, stops appends to the journal (the new snapshot may have
// landed), and the next change compacts again.
func TestReservationsCompactionFailure(t *testing.T) {
	dir := t.TempDir()
	c := placementtest.NewClock()
	s := openStore(t, dir, c)
	a := insert(t, s, placement.Reservation{Kind: placement.KindDeployment, Server: "a", State: placement.StateActive})
	s.compactMin = -1000 // every change compacts
	blocker := filepath.Join(dir, reservationsFile+".tmp")
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o750); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Confirm(a.ID, time.Hour); err == nil {
		t.Fatal("confirm succeeded although compaction failed")
	}
	if !s.journal.Closed() {
		t.Error("journal still open for appends after a failed compaction")
	}
	s.compactMin = 1000
	if _, err := s.Confirm(a.ID, time.Hour); err == nil {
		t.Fatal("confirm succeeded although compaction failed")
	}
	if got, _ := s.Get(a.ID); got.ConfirmedAt != nil {
		t.Errorf("failed confirm not undone: %+v", got)
	}
	if got := openStore(t, crashCopy(t, dir), c).List(); len(got) != 1 || got[0].ID != a.ID || got[0].ConfirmedAt != nil {
		t.Errorf("files after failed compactions: %+v", got)
	}

	if err := os.RemoveAll(blocker); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	b := insert(t, s, placement.Reservation{Kind: placement.KindBuild, Server: "b", State: placement.StateQueued})
	if n := journalLines(t, dir); n != 0 {
		t.Errorf("journal after the compaction that succeeded: %d lines", n)
	}
	if _, err := s.Confirm(a.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := journalLines(t, dir); n != 1 {
		t.Errorf("journal after one more change: %d lines", n)
	}
	got := openStore(t, crashCopy(t, dir), c).List()
	if len(got) != 2 || got[0].ID != a.ID || got[0].ConfirmedAt == nil || got[1].ID != b.ID {
		t.Errorf("after recovery: %+v", got)
	}
}

// Package reservation keeps the capacity held for placements that metrics
// do not show yet: a store with idempotency keys and expiry, durable
// through internal/journal, and the release of confirmed reservations once
// the deployment shows in metrics (ReleasingSource).
package reservation

import (
	"github.com/berth-dev/berth/placement"

	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/journal"
)

// Errors of reservation operations; HTTP handlers map them to status codes
// with errors.Is.
var (
	ErrNotFound = errors.New("reservation not found")
	// ErrIdempotencyConflict: the key was used before for a different request.
	ErrIdempotencyConflict = errors.New("idempotency key already used for a different request")
	// ErrInvalidTransition: the operation does not apply to the
	// reservation's kind or state.
	ErrInvalidTransition = errors.New("invalid reservation transition")
)

// record is a reservation with what idempotent replay needs; it is also
// the on-disk form.
type record struct {
	placement.Reservation
	Fingerprint string             `json:"fingerprint,omitempty"`
	Strategy    placement.Strategy `json:"strategy,omitempty"`
	Summary     string             `json:"summary,omitempty"`
}

const (
	reservationsFile = "reservations.json"
	lockFile         = "reservations.lock"
	// fileVersion 2 added the journal: a version 1 binary must not read
	// the snapshot alone and forget what the journal holds.
	fileVersion = 2
)

type reservationsDoc struct {
	Version int `json:"version"`
	// Generation counts compactions; the journal applies to the snapshot
	// of its own generation only.
	Generation   uint64    `json:"generation,omitempty"`
	Reservations []*record `json:"reservations"`
}

// Store holds open reservations in memory and in two files in
// the data directory: a snapshot, reservations.json (the whole open set and
// its generation), and a journal, reservations.journal (a header line
// naming the snapshot generation it follows, then the changes made since
// that snapshot, one JSON line each).
//
// Protocol:
//
//   - A change (an Update's inserts, a confirm, start or release) appends
//     one line holding the whole records it puts or the ids it deletes,
//     with one write(2), before it is acknowledged. A killed process (kill
//     -9, OOM kill) leaves every line whose write returned whole in the
//     file. If the write fails, the file is cut back to where it was and
//     the change is undone in memory.
//   - Opening loads the snapshot, then replays the journal over it if the
//     journal's generation is the snapshot's. A last line without its
//     newline is a write interrupted by a crash (never acknowledged): it is
//     ignored and cut off. Any other line that does not parse, a snapshot
//     that does not, or a journal newer than the snapshot stops the
//     start-up rather than forgetting reservations. A missing or version 1
//     snapshot is rewritten (compaction) before anything is appended, so
//     a binary from before the journal refuses the directory.
//   - Compaction: when the journal reaches 4× the open set + 1000 lines,
//     the change that would be appended is written instead by rewriting
//     the snapshot with the whole open set under the next generation (temp
//     file, fsync, rename, fsync of the directory — always durable, since
//     the journal is about to be dropped); the journal is then truncated
//     and started with the new generation. A crash before the rename
//     leaves the old snapshot and its journal (the change was not
//     acknowledged); a crash after it leaves the new snapshot with a
//     journal of the old generation, which opening ignores (the snapshot
//     holds all of it) and empties. If writing the snapshot or restarting
//     the journal fails, the journal is closed and every change compacts
//     until one succeeds: nothing is ever appended to a journal of another
//     generation than the snapshot's.
//
// A rewrite per change (what the store did first) cost ≈ 1 ms at a few
// hundred open reservations — encoding every record plus a rename — and
// capped reserving placements at ≈ 600/s; an append costs one record's
// encoding and one write.
//
// Against a crash of the process a written change is safe: the kernel
// holds it. Against a crash of the machine it is safe once fsynced. By
// default every change is fsynced before it is acknowledged; SyncEvery
// trades that for group syncing — changes are fsynced together at most
// that long after they were made, so a power loss forgets at most that
// much, the way Prometheus's WAL syncs per segment and not per sample.
// fsync costs 1–3 ms, which caps reserving placements at a few hundred per
// second when done per change.
//
// Expiry is not written: an expired reservation is dropped from memory
// when noticed, from the snapshot at the next compaction, and skipped when
// found expired on load (after replay).
//
// A lock file (flock) keeps a second process from using the same directory.
type Store struct {
	dir  string
	now  func() time.Time
	lock *os.File

	// syncEvery > 0: writes are fsynced by syncLoop, not per change.
	syncEvery time.Duration
	dirty     bool // written since the last fsync (guarded by mu)
	stopSync  chan struct{}
	syncDone  chan struct{}

	mu      sync.RWMutex
	records map[string]*record
	byKey   map[string]string // idempotency key → id
	order   []*record         // records by (CreatedAt, ID): oldest first
	journal *journal.Journal  // guarded by mu
	gen     uint64            // generation of the snapshot on disk (guarded by mu)

	// compactMin is the journal length, beyond 4 lines per open
	// reservation, that triggers compaction (tests lower it).
	compactMin int
}

// Open opens (creating it when needed) the store in dir.
// now is the clock (nil: time.Now); tests inject one to drive expiry.
func Open(dir string, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create reservation directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open reservation lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("lock reservation directory %s (is another berth-placement using it?): %w", dir, err)
	}
	s := &Store{
		dir:     dir,
		now:     now,
		lock:    lock,
		records: map[string]*record{},
		byKey:   map[string]string{},

		compactMin: 1000,
	}
	if err := s.load(); err != nil {
		lock.Close()
		return nil, err
	}
	return s, nil
}

// SyncEvery switches from an fsync per change to one fsync of all changes
// made in the last interval (see ReservationStore). Call it once, right
// after opening; 0 keeps an fsync per change. onError (may be nil) hears of
// every background sync that failed, so the operator can see it: the
// changes stay written but not yet durable, and the next tick retries.
func (s *Store) SyncEvery(interval time.Duration, onError func(error)) {
	if interval <= 0 || s.stopSync != nil {
		return
	}
	if onError == nil {
		onError = func(error) {}
	}
	s.mu.Lock()
	s.syncEvery = interval
	s.mu.Unlock()
	s.stopSync, s.syncDone = make(chan struct{}), make(chan struct{})
	go s.syncLoop(interval, onError)
}

func (s *Store) syncLoop(interval time.Duration, onError func(error)) {
	defer close(s.syncDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := s.syncIfDirty(); err != nil {
				onError(err)
			}
		case <-s.stopSync:
			return
		}
	}
}

// syncIfDirty fsyncs the journal if anything was appended since the last
// time. (Compaction fsyncs the snapshot itself; the journal's directory
// entry is fsynced on open.)
func (s *Store) syncIfDirty() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty || s.journal.Closed() {
		return nil
	}
	if err := s.journal.Sync(); err != nil {
		// A failed fsync may have dropped the dirty pages, so a retry that
		// succeeds proves nothing: rewrite everything durably instead.
		if cerr := s.compact(); cerr != nil {
			return errors.Join(err, cerr)
		}
	}
	s.dirty = false
	return nil
}

// Close syncs what is not synced yet and releases the directory lock.
func (s *Store) Close() error {
	if s.stopSync != nil {
		close(s.stopSync)
		<-s.syncDone
		s.stopSync = nil
	}
	syncErr := s.syncIfDirty()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return syncErr
	}
	jErr := s.journal.Close()
	err := s.lock.Close()
	s.lock = nil
	return errors.Join(syncErr, jErr, err)
}

func (s *Store) load() error {
	path := filepath.Join(s.dir, reservationsFile)
	// A temp file left by a crash mid-compaction is a snapshot that never
	// replaced the old one; the old one and the journal still hold it all.
	_ = os.Remove(path + ".tmp")
	data, err := os.ReadFile(path)
	version := 0 // no snapshot
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read reservations: %w", err)
	default:
		var doc reservationsDoc
		if err := json.Unmarshal(data, &doc); err != nil {
			// Refuse to start rather than forget reservations silently.
			return fmt.Errorf("parse reservations file %s: %w", path, err)
		}
		// Version 1 (no journal) is read as generation 0.
		if doc.Version != 1 && doc.Version != fileVersion {
			return fmt.Errorf("reservations file %s: unsupported version %d", path, doc.Version)
		}
		version, s.gen = doc.Version, doc.Generation
		for _, r := range doc.Reservations {
			if r != nil && r.ID != "" {
				s.records[r.ID] = r
			}
		}
	}
	var entries []journalEntry
	j, err := journal.Open(filepath.Join(s.dir, journalFile), s.gen, func(line []byte) error {
		e, err := parseJournalLine(line)
		entries = append(entries, e)
		return err
	})
	if err != nil {
		return fmt.Errorf("reservations: %w", err)
	}
	// The journal may have just been created: make its name durable, so
	// that a synced append is never lost with the directory entry.
	if err := journal.SyncDir(s.dir); err != nil {
		j.Close()
		return err
	}
	s.journal = j
	for _, e := range entries {
		e.apply(s.records)
	}
	now := s.now()
	for id, r := range s.records {
		if !now.Before(r.ExpiresAt) {
			delete(s.records, id)
			continue
		}
		if r.IdempotencyKey != "" {
			s.byKey[r.IdempotencyKey] = id
		}
		s.order = append(s.order, r)
	}
	slices.SortFunc(s.order, compareRecords)
	if version != fileVersion {
		// Write a current snapshot before the first append: a binary from
		// before the journal then refuses the directory (unsupported
		// version) instead of reading an old snapshot, or none, and
		// forgetting what the journal holds.
		if err := s.compact(); err != nil {
			s.journal.Close()
			return err
		}
	}
	return nil
}

// persist writes one change (already applied in memory) before it is
// acknowledged: appended to the journal, or, once the journal is long (or
// unusable after a failed write), by compacting. Callers hold mu.
func (s *Store) persist(e journalEntry) error {
	if s.lock == nil {
		// Closed: the directory may belong to another process by now.
		return errors.New("reservations: store is closed")
	}
	if s.journal.Closed() || s.journal.Lines() >= s.compactMin+4*len(s.records) {
		return s.compact()
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("reservations: encode change: %w", err)
	}
	if err := s.journal.Append(line, s.syncEvery == 0); err != nil {
		return fmt.Errorf("reservations: %w", err)
	}
	if s.syncEvery > 0 {
		s.dirty = true
	}
	return nil
}

// compact writes the whole set (which includes the change being made) as
// the snapshot of a new generation, durably, then empties the journal and
// starts it at that generation. Callers hold mu.
func (s *Store) compact() error {
	// A generation is never reused, even when writing fails: the rename
	// may have happened.
	s.gen++
	doc := reservationsDoc{Version: fileVersion, Generation: s.gen, Reservations: s.order}
	data, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode reservations: %w", err)
	}
	if err := journal.ReplaceFile(filepath.Join(s.dir, reservationsFile), data, true); err != nil {
		// If the new snapshot did land, the journal (older generation) is
		// ignored from now on: stop appending to it, and compact again
		// on the next change.
		s.journal.Close()
		return fmt.Errorf("reservations: %w", err)
	}
	s.dirty = false
	// The snapshot holds the change and everything before it, fsynced, so
	// the change is safe even if the journal cannot be started again; it
	// is then left closed, and the next change compacts again.
	_ = s.journal.Reset(s.gen)
	return nil
}

// compareRecords orders records oldest first, the order of s.order.
func compareRecords(a, b *record) int {
	return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
}

// add indexes r (again, after an undone removal). New records are the
// newest, so keeping order sorted is an append. Callers hold mu.
func (s *Store) add(r *record) {
	s.records[r.ID] = r
	if r.IdempotencyKey != "" {
		s.byKey[r.IdempotencyKey] = r.ID
	}
	if i, found := slices.BinarySearchFunc(s.order, r, compareRecords); !found {
		s.order = slices.Insert(s.order, i, r)
	}
}

// prune forgets expired reservations. Callers hold mu.
func (s *Store) prune(now time.Time) int {
	n := len(s.order)
	s.order = slices.DeleteFunc(s.order, func(r *record) bool {
		if now.Before(r.ExpiresAt) {
			return false
		}
		s.unindex(r.ID)
		return true
	})
	return n - len(s.order)
}

// forget removes a record. Callers hold mu.
func (s *Store) forget(id string) {
	if r, ok := s.records[id]; ok {
		if i, found := slices.BinarySearchFunc(s.order, r, compareRecords); found {
			s.order = slices.Delete(s.order, i, i+1)
		}
	}
	s.unindex(id)
}

func (s *Store) unindex(id string) {
	if r, ok := s.records[id]; ok && r.IdempotencyKey != "" {
		delete(s.byKey, r.IdempotencyKey)
	}
	delete(s.records, id)
}

// List returns the open reservations, oldest first.
func (s *Store) List() []placement.Reservation {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.list(s.now())
}

// list returns the reservations open at now. Readers under the read lock
// cannot prune, so every read path filters expired ones itself.
func (s *Store) list(now time.Time) []placement.Reservation {
	out := make([]placement.Reservation, 0, len(s.order))
	for _, r := range s.order {
		if now.Before(r.ExpiresAt) {
			out = append(out, copyReservation(r.Reservation))
		}
	}
	return out
}

// Get returns one open reservation.
func (s *Store) Get(id string) (placement.Reservation, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.records[id]
	if !ok || !s.now().Before(r.ExpiresAt) {
		return placement.Reservation{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return copyReservation(r.Reservation), nil
}

// Expire forgets expired reservations now and returns how many; the
// periodic caller keeps metrics current. (Every other operation expires
// lazily too.)
func (s *Store) Expire() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prune(s.now())
}

// Release deletes a reservation (the placement was abandoned, the
// deployment showed in metrics, or the build ended).
func (s *Store) Release(id string) (placement.Reservation, error) {
	return s.change(id, func(r *record, now time.Time) (bool, error) { return true, nil })
}

// Confirm records that a deployment runs. The reservation keeps counting
// until the caller sees the container in metrics (ReleaseObserved) or for
// grace at most, whichever comes first; until then metrics may not carry
// the container yet, and dropping the reservation would let a second
// placement take the same room.
func (s *Store) Confirm(id string, grace time.Duration) (placement.Reservation, error) {
	return s.change(id, func(r *record, now time.Time) (bool, error) {
		if r.Kind != placement.KindDeployment {
			return false, fmt.Errorf("%w: only deployment reservations are confirmed (builds start and end)", ErrInvalidTransition)
		}
		if r.ConfirmedAt == nil {
			r.ConfirmedAt = &now
			r.ExpiresAt = now.Add(grace)
		}
		return false, nil
	})
}

// ReleaseObserved releases a confirmed reservation once the caller sees
// its deployment in metrics. An unconfirmed one is left alone
// (ErrInvalidTransition): metrics showing the application could be an
// older deployment of it.
func (s *Store) ReleaseObserved(id string) (placement.Reservation, error) {
	return s.change(id, func(r *record, now time.Time) (bool, error) {
		if r.ConfirmedAt == nil {
			return false, fmt.Errorf("%w: reservation %s is not confirmed", ErrInvalidTransition, id)
		}
		return true, nil
	})
}

// Start moves a queued reservation to active (a build started). ttl, when
// positive, renews the expiry from now so a long build is not dropped.
func (s *Store) Start(id string, ttl time.Duration) (placement.Reservation, error) {
	return s.change(id, func(r *record, now time.Time) (bool, error) {
		if r.State != placement.StateQueued {
			return false, fmt.Errorf("%w: reservation %s is %s, not queued", ErrInvalidTransition, id, r.State)
		}
		r.State = placement.StateActive
		r.StartedAt = &now
		if ttl > 0 {
			r.ExpiresAt = now.Add(ttl)
		}
		return false, nil
	})
}

// change applies fn to one reservation and persists the result; fn
// returns true to delete it. On a write failure memory is restored.
func (s *Store) change(id string, fn func(r *record, now time.Time) (remove bool, err error)) (placement.Reservation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.prune(now)
	r, ok := s.records[id]
	if !ok {
		return placement.Reservation{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	before := *r
	before.Reservation = copyReservation(r.Reservation)
	remove, err := fn(r, now)
	if err != nil {
		*r = before
		return placement.Reservation{}, err
	}
	e := journalEntry{Put: []*record{r}}
	if remove {
		s.forget(id)
		e = journalEntry{Delete: []string{id}}
	}
	if err := s.persist(e); err != nil {
		*r = before
		s.add(r)
		return placement.Reservation{}, err
	}
	return copyReservation(r.Reservation), nil
}

// Update runs fn with exclusive access to the store: what fn reads through
// the transaction (open reservations, idempotency keys) cannot change until
// it returns, and what it inserts is written to disk before Update
// returns. This is the critical section that makes "decide and reserve"
// atomic. If fn fails or the write fails, its inserts are undone.
func (s *Store) Update(fn func(tx *Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := &Tx{s: s, now: s.now()}
	s.prune(tx.now)
	err := fn(tx)
	if err == nil && len(tx.inserted) > 0 {
		e := journalEntry{Put: make([]*record, 0, len(tx.inserted))}
		for _, id := range tx.inserted {
			e.Put = append(e.Put, s.records[id])
		}
		err = s.persist(e)
	}
	if err != nil {
		for _, id := range tx.inserted {
			s.forget(id)
		}
		return err
	}
	return nil
}

// View runs fn with read access to the store: many views run at once,
// and none while an Update runs. Insert fails inside a view. Placements
// that reserve nothing use it, so they do not queue behind each other.
func (s *Store) View(fn func(tx *Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return fn(&Tx{s: s, now: s.now(), readOnly: true})
}

// Tx is a view of the store inside Update or View.
type Tx struct {
	s        *Store
	now      time.Time
	readOnly bool
	inserted []string
}

// Now is the store's clock at the start of the transaction.
func (tx *Tx) Now() time.Time { return tx.now }

// Open returns the open reservations, oldest first.
func (tx *Tx) Open() []placement.Reservation { return tx.s.list(tx.now) }

// Lookup finds the open reservation made with an idempotency key, with the
// answer first given and the request fingerprint it was made for.
func (tx *Tx) Lookup(key string) (res placement.Reservation, answer *placement.Decision, fingerprint string, ok bool) {
	id, ok := tx.s.byKey[key]
	if !ok || !tx.now.Before(tx.s.records[id].ExpiresAt) {
		return placement.Reservation{}, nil, "", false
	}
	r := tx.s.records[id]
	// The essential answer is rebuilt from the record, the same before and
	// after a restart. Keeping the full first answer (ranking and every
	// rejection, fleet-sized) per keyed reservation would cost memory in
	// proportion to fleet size × reservations in flight.
	answer = &placement.Decision{
		Kind: r.Kind, Strategy: r.Strategy, Chosen: r.Server, Score: r.Score,
		Ranking: []placement.Ranked{}, Rejected: []placement.Rejected{}, Summary: r.Summary,
	}
	return copyReservation(r.Reservation), answer, r.Fingerprint, true
}

// Insert adds a reservation. ID and CreatedAt are filled in; the key, when
// set, must be unused. fingerprint identifies the request for idempotent
// replay; answer is the decision returned with it.
func (tx *Tx) Insert(r placement.Reservation, fingerprint string, answer *placement.Decision) (placement.Reservation, error) {
	if tx.readOnly {
		return placement.Reservation{}, errors.New("insert reservation: read-only transaction")
	}
	if r.IdempotencyKey != "" {
		if _, used := tx.s.byKey[r.IdempotencyKey]; used {
			return placement.Reservation{}, ErrIdempotencyConflict
		}
	}
	if r.Server == "" || !r.Kind.Valid() || r.State == "" {
		return placement.Reservation{}, fmt.Errorf("insert reservation: server, kind and state are required")
	}
	if !r.ExpiresAt.After(tx.now) {
		return placement.Reservation{}, fmt.Errorf("insert reservation: expiry %s is not in the future", r.ExpiresAt)
	}
	id, err := newReservationID()
	if err != nil {
		return placement.Reservation{}, err
	}
	r.ID = id
	r.CreatedAt = tx.now
	rec := &record{Reservation: copyReservation(r), Fingerprint: fingerprint}
	if answer != nil {
		rec.Strategy, rec.Summary = answer.Strategy, answer.Summary
	}
	tx.s.add(rec)
	tx.inserted = append(tx.inserted, id)
	return copyReservation(r), nil
}

func newReservationID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate reservation id: %w", err)
	}
	return "rsv_" + hex.EncodeToString(b[:]), nil
}

func copyReservation(r placement.Reservation) placement.Reservation {
	if r.ConfirmedAt != nil {
		t := *r.ConfirmedAt
		r.ConfirmedAt = &t
	}
	if r.StartedAt != nil {
		t := *r.StartedAt
		r.StartedAt = &t
	}
	return r
}

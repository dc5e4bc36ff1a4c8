package placement

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ReservationState is where a reservation is in its life.
type ReservationState string

// Reservation states, as in berth_placement_reservations{state}.
const (
	// StateQueued: a build reserved but not started.
	StateQueued ReservationState = "queued"
	// StateActive: a deployment's reservation, or a started build.
	StateActive ReservationState = "active"
)

// Errors of reservation operations; HTTP handlers map them to status codes
// with errors.Is.
var (
	ErrReservationNotFound = errors.New("reservation not found")
	// ErrIdempotencyConflict: the key was used before for a different request.
	ErrIdempotencyConflict = errors.New("idempotency key already used for a different request")
	// ErrInvalidTransition: the operation does not apply to the
	// reservation's kind or state.
	ErrInvalidTransition = errors.New("invalid reservation transition")
)

// Reservation is capacity held on a server for a placement that metrics do
// not show yet. It counts in every fit until released, expired, or (once
// confirmed) seen in metrics.
type Reservation struct {
	ID             string           `json:"id"`
	Kind           Kind             `json:"kind"`
	Server         string           `json:"server"`
	Organization   string           `json:"organization,omitempty"`
	ApplicationID  string           `json:"application_id,omitempty"`
	Resources      Resources        `json:"resources"`
	State          ReservationState `json:"state"`
	IdempotencyKey string           `json:"idempotency_key,omitempty"`
	Score          float64          `json:"score"`
	CreatedAt      time.Time        `json:"created_at"`
	ExpiresAt      time.Time        `json:"expires_at"`
	// ConfirmedAt is set when the deployer says the deployment runs; the
	// reservation then counts for the confirm grace time at most.
	ConfirmedAt *time.Time `json:"confirmed_at,omitempty"`
	// StartedAt is set when a build starts (queued → active).
	StartedAt *time.Time `json:"started_at,omitempty"`
}

// record is a reservation with what idempotent replay needs; it is also
// the on-disk form.
type record struct {
	Reservation
	Fingerprint string   `json:"fingerprint,omitempty"`
	Strategy    Strategy `json:"strategy,omitempty"`
	Summary     string   `json:"summary,omitempty"`
}

const (
	reservationsFile = "reservations.json"
	lockFile         = "reservations.lock"
	fileVersion      = 1
)

type reservationsDoc struct {
	Version      int       `json:"version"`
	Reservations []*record `json:"reservations"`
}

// ReservationStore holds open reservations in memory and in a file in the
// data directory.
//
// Persistence rewrites the whole set on every change (write a temp file,
// rename over the old) rather than appending to a log: the set is small —
// only open reservations, bounded by their TTL — so a rewrite costs little,
// and rename makes every state on disk a complete one, so a kill -9 at any
// point leaves either the old or the new set and there is no torn tail to
// repair and no log to compact. A change is acknowledged only after it is
// written; if writing fails, the change is undone in memory too.
//
// Against a crash of the process (kill -9, OOM kill) a written change is
// safe: the kernel holds it. Against a crash of the machine it is safe once
// fsynced. By default every change is fsynced (file and directory) before
// it is acknowledged; SyncEvery trades that for group syncing — changes are
// fsynced together at most that long after they were made, so a power loss
// forgets at most that much, the way Prometheus's WAL syncs per segment and
// not per sample. fsync costs 1–3 ms, which caps reserving placements at a
// few hundred per second when done per change.
//
// Expiry is not written eagerly: an expired reservation is dropped from
// memory when noticed and from disk at the next write, and one found
// expired on load is dropped then.
//
// A lock file (flock) keeps a second process from using the same directory.
type ReservationStore struct {
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
	byKey   map[string]string    // idempotency key → id
	answers map[string]*Decision // id → full first answer, for replay (memory only)
}

// OpenReservationStore opens (creating it when needed) the store in dir.
// now is the clock (nil: time.Now); tests inject one to drive expiry.
func OpenReservationStore(dir string, now func() time.Time) (*ReservationStore, error) {
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
	s := &ReservationStore{
		dir:     dir,
		now:     now,
		lock:    lock,
		records: map[string]*record{},
		byKey:   map[string]string{},
		answers: map[string]*Decision{},
	}
	if err := s.load(); err != nil {
		lock.Close()
		return nil, err
	}
	return s, nil
}

// SyncEvery switches from an fsync per change to one fsync of all changes
// made in the last interval (see ReservationStore). Call it once, right
// after opening; 0 keeps an fsync per change.
func (s *ReservationStore) SyncEvery(interval time.Duration) {
	if interval <= 0 || s.stopSync != nil {
		return
	}
	s.mu.Lock()
	s.syncEvery = interval
	s.mu.Unlock()
	s.stopSync, s.syncDone = make(chan struct{}), make(chan struct{})
	go s.syncLoop(interval)
}

func (s *ReservationStore) syncLoop(interval time.Duration) {
	defer close(s.syncDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = s.syncIfDirty()
		case <-s.stopSync:
			return
		}
	}
}

// syncIfDirty fsyncs the reservations file and directory if anything was
// written since the last time.
func (s *ReservationStore) syncIfDirty() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty {
		return nil
	}
	if err := syncPath(filepath.Join(s.dir, reservationsFile)); err != nil {
		return err
	}
	if err := syncPath(s.dir); err != nil {
		return err
	}
	s.dirty = false
	return nil
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// Close syncs what is not synced yet and releases the directory lock.
func (s *ReservationStore) Close() error {
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
	err := s.lock.Close()
	s.lock = nil
	return errors.Join(syncErr, err)
}

func (s *ReservationStore) load() error {
	path := filepath.Join(s.dir, reservationsFile)
	// A temp file left by a crash mid-write is an unfinished change that
	// was never acknowledged.
	_ = os.Remove(path + ".tmp")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read reservations: %w", err)
	}
	var doc reservationsDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		// Refuse to start rather than forget reservations silently.
		return fmt.Errorf("parse reservations file %s: %w", path, err)
	}
	if doc.Version != fileVersion {
		return fmt.Errorf("reservations file %s: unsupported version %d", path, doc.Version)
	}
	now := s.now()
	for _, r := range doc.Reservations {
		if r == nil || r.ID == "" || !now.Before(r.ExpiresAt) {
			continue
		}
		s.records[r.ID] = r
		if r.IdempotencyKey != "" {
			s.byKey[r.IdempotencyKey] = r.ID
		}
	}
	return nil
}

// persist writes the whole set atomically. Callers hold mu.
func (s *ReservationStore) persist() error {
	doc := reservationsDoc{Version: fileVersion, Reservations: s.sorted()}
	data, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode reservations: %w", err)
	}
	if err := replaceFile(filepath.Join(s.dir, reservationsFile), data, s.syncEvery == 0); err != nil {
		return fmt.Errorf("reservations: %w", err)
	}
	if s.syncEvery > 0 {
		s.dirty = true
	}
	return nil
}

func (s *ReservationStore) sorted() []*record {
	rs := slices.Collect(maps.Values(s.records))
	slices.SortFunc(rs, func(a, b *record) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return rs
}

// prune forgets expired reservations. Callers hold mu.
func (s *ReservationStore) prune(now time.Time) int {
	n := 0
	for id, r := range s.records {
		if !now.Before(r.ExpiresAt) {
			s.forget(id)
			n++
		}
	}
	return n
}

func (s *ReservationStore) forget(id string) {
	if r, ok := s.records[id]; ok && r.IdempotencyKey != "" {
		delete(s.byKey, r.IdempotencyKey)
	}
	delete(s.records, id)
	delete(s.answers, id)
}

// List returns the open reservations, oldest first.
func (s *ReservationStore) List() []Reservation {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.list(s.now())
}

// list returns the reservations open at now. Readers under the read lock
// cannot prune, so every read path filters expired ones itself.
func (s *ReservationStore) list(now time.Time) []Reservation {
	out := []Reservation{}
	for _, r := range s.sorted() {
		if now.Before(r.ExpiresAt) {
			out = append(out, copyReservation(r.Reservation))
		}
	}
	return out
}

// Get returns one open reservation.
func (s *ReservationStore) Get(id string) (Reservation, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.records[id]
	if !ok || !s.now().Before(r.ExpiresAt) {
		return Reservation{}, fmt.Errorf("%w: %s", ErrReservationNotFound, id)
	}
	return copyReservation(r.Reservation), nil
}

// Expire forgets expired reservations now and returns how many; the
// periodic caller keeps metrics current. (Every other operation expires
// lazily too.)
func (s *ReservationStore) Expire() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prune(s.now())
}

// Release deletes a reservation (the placement was abandoned, the
// deployment showed in metrics, or the build ended).
func (s *ReservationStore) Release(id string) (Reservation, error) {
	return s.change(id, func(r *record, now time.Time) (bool, error) { return true, nil })
}

// Confirm records that a deployment runs. The reservation keeps counting
// until the caller sees the container in metrics (ReleaseObserved) or for
// grace at most, whichever comes first; until then metrics may not carry
// the container yet, and dropping the reservation would let a second
// placement take the same room.
func (s *ReservationStore) Confirm(id string, grace time.Duration) (Reservation, error) {
	return s.change(id, func(r *record, now time.Time) (bool, error) {
		if r.Kind != KindDeployment {
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
func (s *ReservationStore) ReleaseObserved(id string) (Reservation, error) {
	return s.change(id, func(r *record, now time.Time) (bool, error) {
		if r.ConfirmedAt == nil {
			return false, fmt.Errorf("%w: reservation %s is not confirmed", ErrInvalidTransition, id)
		}
		return true, nil
	})
}

// Start moves a queued reservation to active (a build started). ttl, when
// positive, renews the expiry from now so a long build is not dropped.
func (s *ReservationStore) Start(id string, ttl time.Duration) (Reservation, error) {
	return s.change(id, func(r *record, now time.Time) (bool, error) {
		if r.State != StateQueued {
			return false, fmt.Errorf("%w: reservation %s is %s, not queued", ErrInvalidTransition, id, r.State)
		}
		r.State = StateActive
		r.StartedAt = &now
		if ttl > 0 {
			r.ExpiresAt = now.Add(ttl)
		}
		return false, nil
	})
}

// change applies fn to one reservation and persists the result; fn
// returns true to delete it. On a write failure memory is restored.
func (s *ReservationStore) change(id string, fn func(r *record, now time.Time) (remove bool, err error)) (Reservation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.prune(now)
	r, ok := s.records[id]
	if !ok {
		return Reservation{}, fmt.Errorf("%w: %s", ErrReservationNotFound, id)
	}
	before := *r
	before.Reservation = copyReservation(r.Reservation)
	answer := s.answers[id]
	remove, err := fn(r, now)
	if err != nil {
		*r = before
		return Reservation{}, err
	}
	if remove {
		s.forget(id)
	}
	if err := s.persist(); err != nil {
		*r = before
		s.records[id] = r
		if r.IdempotencyKey != "" {
			s.byKey[r.IdempotencyKey] = id
		}
		if answer != nil {
			s.answers[id] = answer
		}
		return Reservation{}, err
	}
	return copyReservation(r.Reservation), nil
}

// Update runs fn with exclusive access to the store: what fn reads through
// the transaction (open reservations, idempotency keys) cannot change until
// it returns, and what it inserts is written to disk before Update
// returns. This is the critical section that makes "decide and reserve"
// atomic. If fn fails or the write fails, its inserts are undone.
func (s *ReservationStore) Update(fn func(tx *ReservationTx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := &ReservationTx{s: s, now: s.now()}
	s.prune(tx.now)
	err := fn(tx)
	if err == nil && len(tx.inserted) > 0 {
		err = s.persist()
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
func (s *ReservationStore) View(fn func(tx *ReservationTx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return fn(&ReservationTx{s: s, now: s.now(), readOnly: true})
}

// ReservationTx is a view of the store inside Update or View.
type ReservationTx struct {
	s        *ReservationStore
	now      time.Time
	readOnly bool
	inserted []string
}

// Now is the store's clock at the start of the transaction.
func (tx *ReservationTx) Now() time.Time { return tx.now }

// Open returns the open reservations, oldest first.
func (tx *ReservationTx) Open() []Reservation { return tx.s.list(tx.now) }

// ReservedByServer sums the open reservations per server.
func (tx *ReservationTx) ReservedByServer() map[string]Resources {
	out := map[string]Resources{}
	for _, r := range tx.s.records {
		if tx.now.Before(r.ExpiresAt) {
			out[r.Server] = out[r.Server].Add(r.Resources)
		}
	}
	return out
}

// Lookup finds the open reservation made with an idempotency key, with the
// answer first given and the request fingerprint it was made for.
func (tx *ReservationTx) Lookup(key string) (res Reservation, answer *Decision, fingerprint string, ok bool) {
	id, ok := tx.s.byKey[key]
	if !ok || !tx.now.Before(tx.s.records[id].ExpiresAt) {
		return Reservation{}, nil, "", false
	}
	r := tx.s.records[id]
	answer = tx.s.answers[id]
	if answer == nil {
		// After a restart only the reservation survives: rebuild the
		// essential answer from it.
		answer = &Decision{
			Kind: r.Kind, Strategy: r.Strategy, Chosen: r.Server, Score: r.Score,
			Ranking: []Ranked{}, Rejected: []Rejected{}, Summary: r.Summary,
		}
	}
	return copyReservation(r.Reservation), answer, r.Fingerprint, true
}

// Insert adds a reservation. ID and CreatedAt are filled in; the key, when
// set, must be unused. fingerprint identifies the request for idempotent
// replay; answer is the decision returned with it.
func (tx *ReservationTx) Insert(r Reservation, fingerprint string, answer *Decision) (Reservation, error) {
	if tx.readOnly {
		return Reservation{}, errors.New("insert reservation: read-only transaction")
	}
	if r.IdempotencyKey != "" {
		if _, used := tx.s.byKey[r.IdempotencyKey]; used {
			return Reservation{}, ErrIdempotencyConflict
		}
	}
	if r.Server == "" || !r.Kind.Valid() || r.State == "" {
		return Reservation{}, fmt.Errorf("insert reservation: server, kind and state are required")
	}
	if !r.ExpiresAt.After(tx.now) {
		return Reservation{}, fmt.Errorf("insert reservation: expiry %s is not in the future", r.ExpiresAt)
	}
	id, err := newReservationID()
	if err != nil {
		return Reservation{}, err
	}
	r.ID = id
	r.CreatedAt = tx.now
	rec := &record{Reservation: copyReservation(r), Fingerprint: fingerprint}
	if answer != nil {
		rec.Strategy, rec.Summary = answer.Strategy, answer.Summary
		if r.IdempotencyKey != "" {
			// Only a retry can ask for the full answer again.
			tx.s.answers[id] = answer
		}
	}
	tx.s.records[id] = rec
	if r.IdempotencyKey != "" {
		tx.s.byKey[r.IdempotencyKey] = id
	}
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

func copyReservation(r Reservation) Reservation {
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

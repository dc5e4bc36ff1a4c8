package build

import (
	"github.com/berth-dev/berth/placement"

	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/journal"
)

// Bounds of the build records: enough history for estimates, small enough
// to rewrite the whole file on every change.
const (
	maxFinishedPerApplication = 2 * HistoryBuilds
	maxFinishedBuilds         = 10000
	buildRecordsFile          = "builds.json"
	buildRecordsVersion       = 1
)

// Pending is what build placement remembers of a reserved build until
// it ends: its expected duration (for wait estimates) and application.
type Pending struct {
	ID            string        `json:"id"`
	ApplicationID string        `json:"application_id,omitempty"`
	Expected      time.Duration `json:"expected_ns"`
}

// Records keeps the expected duration of open build reservations and
// the finished builds of each application (the keys of build history). It
// lives beside the reservations in the data directory (builds.json,
// rewritten whole and renamed into place on every change: builds are few
// compared with placements) or only in memory when dir is empty.
type Records struct {
	dir string

	mu       sync.Mutex
	pending  map[string]Pending
	finished []Finished // oldest first
}

type buildRecordsDoc struct {
	Version  int        `json:"version"`
	Pending  []Pending  `json:"pending"`
	Finished []Finished `json:"finished"`
}

// OpenRecords loads the records from dir (created when needed); an
// empty dir keeps them in memory only. A corrupt file is an error rather
// than a silently empty history.
func OpenRecords(dir string) (*Records, error) {
	r := &Records{dir: dir, pending: map[string]Pending{}}
	if dir == "" {
		return r, nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create build records directory: %w", err)
	}
	path := filepath.Join(dir, buildRecordsFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read build records: %w", err)
	}
	var doc buildRecordsDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse build records file %s: %w", path, err)
	}
	if doc.Version != buildRecordsVersion {
		return nil, fmt.Errorf("build records file %s: unsupported version %d", path, doc.Version)
	}
	for _, p := range doc.Pending {
		r.pending[p.ID] = p
	}
	r.finished = doc.Finished
	return r, nil
}

// AddPending remembers a newly reserved build. open lists the reservations
// still open; pending entries of others (expired, released) are dropped.
func (r *Records) AddPending(b Pending, open []placement.Reservation) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := map[string]bool{b.ID: true}
	for _, o := range open {
		ids[o.ID] = true
	}
	before := r.pending
	r.pending = map[string]Pending{}
	for id, p := range before {
		if ids[id] {
			r.pending[id] = p
		}
	}
	r.pending[b.ID] = b
	if err := r.persist(); err != nil {
		r.pending = before
		return err
	}
	return nil
}

// Expected returns the expected duration of an open build reservation.
func (r *Records) Expected(id string) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.pending[id]
	return p.Expected, ok
}

// FinishedOf is the history entry of build reservation res ended at
// ended: ok only when it names an application and was started before
// ended (a build never started has nothing to learn from).
func FinishedOf(res placement.Reservation, ended time.Time) (b Finished, ok bool) {
	if res.ApplicationID == "" || res.StartedAt == nil || !ended.After(*res.StartedAt) {
		return Finished{}, false
	}
	return Finished{
		ID: res.ID, ApplicationID: res.ApplicationID, Server: res.Server,
		StartedAt: *res.StartedAt, EndedAt: ended,
	}, true
}

// Finish records a build's end. A build with an application and a start
// joins the history, with what Prometheus saw of its container when the
// caller looked it up (zero: unknown); the pending entry is dropped either
// way.
func (r *Records) Finish(res placement.Reservation, ended time.Time, usage Usage) (recorded bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pendingBefore, hadPending := r.pending[res.ID]
	finishedBefore := r.finished
	delete(r.pending, res.ID)
	if b, ok := FinishedOf(res, ended); ok {
		b.Usage = usage
		r.finished = append(slices.Clone(r.finished), b)
		r.trim(res.ApplicationID)
		recorded = true
	}
	if err := r.persist(); err != nil {
		if hadPending {
			r.pending[res.ID] = pendingBefore
		}
		r.finished = finishedBefore
		return false, err
	}
	return recorded, nil
}

// trim keeps the newest maxFinishedPerApplication builds of app and the
// newest maxFinishedBuilds overall. Callers hold mu.
func (r *Records) trim(app string) {
	n := 0
	for _, f := range r.finished {
		if f.ApplicationID == app {
			n++
		}
	}
	if drop := n - maxFinishedPerApplication; drop > 0 {
		kept := r.finished[:0:0]
		for _, f := range r.finished {
			if f.ApplicationID == app && drop > 0 {
				drop--
				continue
			}
			kept = append(kept, f)
		}
		r.finished = kept
	}
	if over := len(r.finished) - maxFinishedBuilds; over > 0 {
		r.finished = slices.Clone(r.finished[over:])
	}
}

// RecentBuilds returns up to n finished builds of an application, newest
// first.
func (r *Records) RecentBuilds(applicationID string, n int) []Finished {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Finished
	for i := len(r.finished) - 1; i >= 0 && len(out) < n; i-- {
		if r.finished[i].ApplicationID == applicationID {
			out = append(out, r.finished[i])
		}
	}
	return out
}

// LastBuilds returns the newest finished build of each application whose
// newest build ended at or after since, newest first, at most n of them:
// the bounded set behind the per-application build metrics.
func (r *Records) LastBuilds(since time.Time, n int) []Finished {
	r.mu.Lock()
	defer r.mu.Unlock()
	newest := map[string]Finished{}
	for _, f := range r.finished {
		if f.EndedAt.Before(since) {
			continue
		}
		if cur, ok := newest[f.ApplicationID]; !ok || !f.EndedAt.Before(cur.EndedAt) {
			newest[f.ApplicationID] = f
		}
	}
	out := make([]Finished, 0, len(newest))
	for _, f := range newest {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Finished) int {
		if c := b.EndedAt.Compare(a.EndedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ApplicationID, b.ApplicationID)
	})
	if len(out) > n {
		out = out[:max(n, 0)]
	}
	return out
}

// persist writes the records atomically (temp file, fsync, rename).
// Callers hold mu.
func (r *Records) persist() error {
	if r.dir == "" {
		return nil
	}
	doc := buildRecordsDoc{Version: buildRecordsVersion, Pending: []Pending{}, Finished: r.finished}
	for _, p := range r.pending {
		doc.Pending = append(doc.Pending, p)
	}
	slices.SortFunc(doc.Pending, func(a, b Pending) int { return strings.Compare(a.ID, b.ID) })
	if doc.Finished == nil {
		doc.Finished = []Finished{}
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encode build records: %w", err)
	}
	if err := journal.ReplaceFile(filepath.Join(r.dir, buildRecordsFile), data, true); err != nil {
		return fmt.Errorf("build records: %w", err)
	}
	return nil
}

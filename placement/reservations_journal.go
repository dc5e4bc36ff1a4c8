package placement

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// journalFile holds the changes made since reservations.json was written,
// one JSON line per change (see ReservationStore for the protocol).
const journalFile = "reservations.journal"

// journalHeader is the journal's first line: the generation of the
// snapshot its changes apply to.
type journalHeader struct {
	Generation uint64 `json:"generation"`
}

// journalEntry is one change: one line of the journal after the header.
// Put carries whole records.
type journalEntry struct {
	Put    []*record `json:"put,omitempty"`
	Delete []string  `json:"delete,omitempty"`
}

// apply replays the entry onto records.
func (e journalEntry) apply(records map[string]*record) {
	for _, r := range e.Put {
		records[r.ID] = r
	}
	for _, id := range e.Delete {
		delete(records, id)
	}
}

// journal is the append-only file of changes.
type journal struct {
	path  string
	f     *os.File // opened O_APPEND; nil once unusable
	gen   uint64   // generation in the header
	size  int64    // bytes of whole lines, header included
	lines int      // changes (header excluded)
	buf   []byte
}

// openJournal opens (creating it when needed) the journal at path and
// returns its changes in order if it belongs to the snapshot of generation
// gen. A journal of an older generation was folded into the snapshot by a
// compaction that crashed before emptying it: it is emptied now. A last
// line without its newline is a write that a crash interrupted — never
// acknowledged — and is cut off so the next append starts on a line of its
// own. Any other line that does not parse, or a journal newer than the
// snapshot, is an error: refusing to start beats forgetting reservations.
func openJournal(path string, gen uint64) (*journal, []journalEntry, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("open reservations journal: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("read reservations journal %s: %w", path, err)
	}
	j := &journal{path: path, f: f}
	fail := func(err error) (*journal, []journalEntry, error) {
		f.Close()
		return nil, nil, err
	}
	var entries []journalEntry
	n := 0
	for rest := data; len(rest) > 0; n++ {
		end := bytes.IndexByte(rest, '\n')
		if end < 0 {
			break // torn tail
		}
		line := rest[:end]
		rest = rest[end+1:]
		if n == 0 {
			var h struct {
				Generation *uint64 `json:"generation"`
			}
			if err := json.Unmarshal(line, &h); err != nil || h.Generation == nil {
				return fail(fmt.Errorf("parse reservations journal %s line 1: not a header: %q", path, line))
			}
			switch {
			case *h.Generation > gen:
				return fail(fmt.Errorf("reservations journal %s: generation %d is newer than the snapshot's %d", path, *h.Generation, gen))
			case *h.Generation < gen:
				// Stale: everything in it is in the snapshot.
				return j, nil, j.reset(gen)
			}
			j.gen = gen
		} else {
			e, err := parseJournalLine(line)
			if err != nil {
				return fail(fmt.Errorf("parse reservations journal %s line %d: %w", path, n+1, err))
			}
			entries = append(entries, e)
			j.lines++
		}
		j.size += int64(end + 1)
	}
	if j.size == 0 {
		// New, or only a torn header: start it.
		return j, nil, j.reset(gen)
	}
	if j.size < int64(len(data)) {
		if err := f.Truncate(j.size); err != nil {
			return fail(fmt.Errorf("cut torn tail of reservations journal %s: %w", path, err))
		}
	}
	return j, entries, nil
}

func parseJournalLine(line []byte) (journalEntry, error) {
	var e journalEntry
	if err := json.Unmarshal(line, &e); err != nil {
		return e, err
	}
	if len(e.Put) == 0 && len(e.Delete) == 0 {
		return e, errors.New("empty change")
	}
	for _, r := range e.Put {
		if r == nil || r.ID == "" {
			return e, errors.New("reservation without id")
		}
	}
	return e, nil
}

// append writes e as one line with one write(2): once it returns, a killed
// process leaves the whole line in the file. With durable, the file is
// also fsynced. On failure the file is cut back to its previous end, so a
// change reported failed is not replayed and a partial line cannot glue
// itself to the next one; if even that fails, the journal is closed and
// not used again (the store then compacts, which truncates it).
func (j *journal) append(e journalEntry, durable bool) error {
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode reservation change: %w", err)
	}
	j.buf = append(append(j.buf[:0], line...), '\n')
	_, err = j.f.Write(j.buf)
	if err != nil {
		err = fmt.Errorf("append to %s: %w", j.path, err)
	} else if durable {
		err = j.sync()
	}
	if err != nil {
		if terr := j.f.Truncate(j.size); terr != nil {
			j.close()
			return errors.Join(err, fmt.Errorf("cut back %s: %w", j.path, terr))
		}
		return err
	}
	j.size += int64(len(j.buf))
	j.lines++
	return nil
}

// reset empties the journal and starts it for the snapshot of generation
// gen; a journal closed after a failed write is opened again. On failure
// the journal is left closed: appending to a journal of another
// generation than the snapshot's would lose the changes on replay.
func (j *journal) reset(gen uint64) error {
	err := j.resetFile(gen)
	if err != nil {
		j.close()
		return fmt.Errorf("reset reservations journal %s: %w", j.path, err)
	}
	return nil
}

func (j *journal) resetFile(gen uint64) error {
	if j.f == nil {
		f, err := os.OpenFile(j.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o640)
		if err != nil {
			return err
		}
		j.f = f
	} else if err := j.f.Truncate(0); err != nil {
		return err
	}
	j.gen, j.size, j.lines = gen, 0, 0
	header, err := json.Marshal(journalHeader{Generation: gen})
	if err != nil {
		return err
	}
	header = append(header, '\n')
	if _, err := j.f.Write(header); err != nil {
		return err
	}
	j.size = int64(len(header))
	return nil
}

func (j *journal) sync() error {
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", j.path, err)
	}
	return nil
}

// close closes the file; a closed journal has f == nil.
func (j *journal) close() error {
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

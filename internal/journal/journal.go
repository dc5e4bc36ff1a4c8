// Package journal keeps a state on disk as a snapshot file plus an
// append-only journal of the changes since, the way a database keeps a WAL:
// a change costs one write(2) of one line (a killed process loses none),
// fsyncs can be batched (a power loss forgets at most one interval), and a
// compaction writes a new snapshot atomically (ReplaceFile) and empties the
// journal. The header line's generation ties a journal to its snapshot, so
// a crash between the two steps is recognised on the next Open.
package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// header is the journal's first line.
type header struct {
	Generation uint64 `json:"generation"`
}

// Journal is an append-only file of changes, one line each, after a header
// line naming the generation of the snapshot the changes apply to.
type Journal struct {
	path  string
	f     *os.File // opened O_APPEND; nil once unusable
	gen   uint64   // generation in the header
	size  int64    // bytes of whole lines, header included
	lines int      // changes (header excluded)
	buf   []byte
}

// Open opens (creating it when needed) the journal at path and hands its
// changes, in order, to parse if it belongs to the snapshot of generation
// gen. A journal of an older generation was folded into the snapshot by a
// compaction that crashed before emptying it: it is emptied now. A last
// line without its newline is a write that a crash interrupted — never
// acknowledged — and is cut off so the next append starts on a line of its
// own. Any other line that does not parse, or a journal newer than the
// snapshot, is an error: refusing to start beats forgetting reservations.
func Open(path string, gen uint64, parse func(line []byte) error) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read journal %s: %w", path, err)
	}
	j := &Journal{path: path, f: f}
	fail := func(err error) (*Journal, error) {
		f.Close()
		return nil, err
	}
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
				return fail(fmt.Errorf("parse journal %s line 1: not a header: %q", path, line))
			}
			switch {
			case *h.Generation > gen:
				return fail(fmt.Errorf("journal %s: generation %d is newer than the snapshot's %d", path, *h.Generation, gen))
			case *h.Generation < gen:
				// Stale: everything in it is in the snapshot.
				return j, j.Reset(gen)
			}
			j.gen = gen
		} else {
			if err := parse(line); err != nil {
				return fail(fmt.Errorf("parse journal %s line %d: %w", path, n+1, err))
			}
			j.lines++
		}
		j.size += int64(end + 1)
	}
	if j.size == 0 {
		// New, or only a torn header: start it.
		return j, j.Reset(gen)
	}
	if j.size < int64(len(data)) {
		if err := f.Truncate(j.size); err != nil {
			return fail(fmt.Errorf("cut torn tail of journal %s: %w", path, err))
		}
	}
	return j, nil
}

// Append writes line (without its newline) with one write(2): once it returns, a killed
// process leaves the whole line in the file. With durable, the file is
// also fsynced. On failure the file is cut back to its previous end, so a
// change reported failed is not replayed and a partial line cannot glue
// itself to the next one; if even that fails, the journal is closed and
// not used again (the store then compacts, which truncates it).
func (j *Journal) Append(line []byte, durable bool) error {
	if j.f == nil {
		return fmt.Errorf("append to %s: journal closed after a failed write", j.path)
	}
	j.buf = append(append(j.buf[:0], line...), '\n')
	_, err := j.f.Write(j.buf)
	if err != nil {
		err = fmt.Errorf("append to %s: %w", j.path, err)
	} else if durable {
		err = j.Sync()
	}
	if err != nil {
		if terr := j.f.Truncate(j.size); terr != nil {
			j.Close()
			return errors.Join(err, fmt.Errorf("cut back %s: %w", j.path, terr))
		}
		return err
	}
	j.size += int64(len(j.buf))
	j.lines++
	return nil
}

// Reset empties the journal and starts it for the snapshot of generation
// gen; a journal closed after a failed write is opened again. On failure
// the journal is left closed: appending to a journal of another
// generation than the snapshot's would lose the changes on replay.
func (j *Journal) Reset(gen uint64) error {
	err := j.resetFile(gen)
	if err != nil {
		j.Close()
		return fmt.Errorf("reset journal %s: %w", j.path, err)
	}
	return nil
}

func (j *Journal) resetFile(gen uint64) error {
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
	header, err := json.Marshal(header{Generation: gen})
	if err != nil {
		return err
	}
	line := append(header, '\n')
	if _, err := j.f.Write(line); err != nil {
		return err
	}
	j.size = int64(len(line))
	return nil
}

// Sync fsyncs the journal.
func (j *Journal) Sync() error {
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", j.path, err)
	}
	return nil
}

// Close closes the file; a closed journal is opened again by Reset.
func (j *Journal) Close() error {
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// Lines is the number of changes in the journal (header excluded).
func (j *Journal) Lines() int { return j.lines }

// Size is the journal's size in bytes, header included.
func (j *Journal) Size() int64 { return j.size }

// Generation is the generation in the header.
func (j *Journal) Generation() uint64 { return j.gen }

// Closed reports whether the journal is closed (after a failed write or
// reset, or Close): appends fail until Reset opens it again.
func (j *Journal) Closed() bool { return j.f == nil }

// File is the open journal file (nil when closed), for tests that make its
// writes fail as a failing disk would.
func (j *Journal) File() *os.File { return j.f }

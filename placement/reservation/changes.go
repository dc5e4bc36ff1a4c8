package reservation

import (
	"encoding/json"
	"errors"
)

// journalFile holds the changes made since reservations.json was written,
// one JSON line per change (see ReservationStore for the protocol).
const journalFile = "reservations.journal"

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

package build

import (
	"github.com/berth-dev/berth/internal/placementtest"
	"github.com/berth-dev/berth/placement"

	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestBuildRecordsPersist(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	open := []placement.Reservation{{ID: "rsv_1"}, {ID: "rsv_2"}}
	if err := r.AddPending(Pending{ID: "rsv_1", ApplicationID: "app", Expected: 7 * time.Minute}, open); err != nil {
		t.Fatal(err)
	}
	if err := r.AddPending(Pending{ID: "rsv_2", Expected: time.Minute}, open); err != nil {
		t.Fatal(err)
	}
	start := placementtest.Now
	recorded, err := r.Finish(placement.Reservation{ID: "rsv_1", ApplicationID: "app", Server: "b", StartedAt: &start}, start.Add(3*time.Minute), Usage{PeakMemoryBytes: 5e8})
	if err != nil || !recorded {
		t.Fatal(recorded, err)
	}
	// Not started: released without history.
	if recorded, err := r.Finish(placement.Reservation{ID: "rsv_x", ApplicationID: "app"}, start, Usage{}); recorded || err != nil {
		t.Errorf("unstarted build recorded: %v %v", recorded, err)
	}

	again, err := OpenRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := again.Expected("rsv_1"); ok {
		t.Error("finished build still pending")
	}
	if e, ok := again.Expected("rsv_2"); !ok || e != time.Minute {
		t.Errorf("pending build after reopen: %v %v", e, ok)
	}
	got := again.RecentBuilds("app", 5)
	if len(got) != 1 || got[0].Server != "b" || got[0].EndedAt.Sub(got[0].StartedAt) != 3*time.Minute || got[0].Usage.PeakMemoryBytes != 5e8 {
		t.Errorf("history after reopen: %+v", got)
	}

	// Pending entries of reservations no longer open are dropped.
	if err := again.AddPending(Pending{ID: "rsv_3"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := again.Expected("rsv_2"); ok {
		t.Error("pending entry of a closed reservation kept")
	}

	// A corrupt file is an error, not an empty history.
	if err := os.WriteFile(filepath.Join(dir, buildRecordsFile), []byte("{"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRecords(dir); err == nil {
		t.Error("corrupt build records accepted")
	}
}

func TestBuildRecordsKeepNewestPerApplication(t *testing.T) {
	r, _ := OpenRecords("")
	for i := range maxFinishedPerApplication + 5 {
		start := placementtest.Now.Add(time.Duration(i) * time.Minute)
		if _, err := r.Finish(placement.Reservation{ID: string(rune('A' + i)), ApplicationID: "app", StartedAt: &start}, start.Add(time.Second), Usage{}); err != nil {
			t.Fatal(err)
		}
	}
	all := r.RecentBuilds("app", 1000)
	if len(all) != maxFinishedPerApplication || all[0].ID != string(rune('A'+maxFinishedPerApplication+4)) || all[len(all)-1].ID != "F" {
		t.Errorf("kept %d builds, newest %s oldest %s", len(all), all[0].ID, all[len(all)-1].ID)
	}
}

func TestBuildRecordsLastBuilds(t *testing.T) {
	r, _ := OpenRecords("")
	finish := func(id, app string, start time.Time, d time.Duration) {
		t.Helper()
		if _, err := r.Finish(placement.Reservation{ID: id, ApplicationID: app, Server: "b", StartedAt: &start}, start.Add(d), Usage{}); err != nil {
			t.Fatal(err)
		}
	}
	finish("old", "gone", placementtest.Now.Add(-10*24*time.Hour), time.Minute) // ended before since
	finish("a1", "a", placementtest.Now, time.Minute)
	finish("b1", "b", placementtest.Now.Add(time.Minute), time.Minute)
	finish("a2", "a", placementtest.Now.Add(2*time.Minute), 3*time.Minute) // a's newest
	finish("c1", "c", placementtest.Now.Add(3*time.Minute), time.Minute)
	// Not started: no history, so not in the metrics either.
	if _, err := r.Finish(placement.Reservation{ID: "d1", ApplicationID: "d"}, placementtest.Now, Usage{}); err != nil {
		t.Fatal(err)
	}

	since := placementtest.Now.Add(-7 * 24 * time.Hour)
	ids := func(bs []Finished) []string {
		var out []string
		for _, b := range bs {
			out = append(out, b.ID)
		}
		return out
	}
	// Newest first by end: a2 ends at +5m, c1 at +4m, b1 at +2m.
	if got := ids(r.LastBuilds(since, 10)); !slices.Equal(got, []string{"a2", "c1", "b1"}) {
		t.Errorf("last builds %v", got)
	}
	if got := ids(r.LastBuilds(since, 2)); !slices.Equal(got, []string{"a2", "c1"}) {
		t.Errorf("bounded to 2: %v", got)
	}
	if got := r.LastBuilds(since, 0); len(got) != 0 {
		t.Errorf("bounded to 0: %v", got)
	}
	if got := ids(r.LastBuilds(placementtest.Now.Add(3*time.Minute), 10)); !slices.Equal(got, []string{"a2", "c1"}) {
		t.Errorf("since +3m: %v", got)
	}
}

func TestFinishedBuildOf(t *testing.T) {
	start := placementtest.Now
	for _, c := range []struct {
		name string
		res  placement.Reservation
		end  time.Time
		ok   bool
	}{
		{"started with application", placement.Reservation{ID: "r", ApplicationID: "a", Server: "b", StartedAt: &start}, start.Add(time.Minute), true},
		{"no application", placement.Reservation{ID: "r", StartedAt: &start}, start.Add(time.Minute), false},
		{"never started", placement.Reservation{ID: "r", ApplicationID: "a"}, start.Add(time.Minute), false},
		{"ended before start", placement.Reservation{ID: "r", ApplicationID: "a", StartedAt: &start}, start, false},
	} {
		b, ok := FinishedOf(c.res, c.end)
		if ok != c.ok {
			t.Errorf("%s: ok %v", c.name, ok)
		}
		if ok && (b.ApplicationID != "a" || b.Server != "b" || !b.StartedAt.Equal(start) || !b.EndedAt.Equal(c.end)) {
			t.Errorf("%s: %+v", c.name, b)
		}
	}
}

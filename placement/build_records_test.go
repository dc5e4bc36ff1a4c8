package placement

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestBuildRecordsPersist(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenBuildRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	open := []Reservation{{ID: "rsv_1"}, {ID: "rsv_2"}}
	if err := r.AddPending(PendingBuild{ID: "rsv_1", ApplicationID: "app", Expected: 7 * time.Minute}, open); err != nil {
		t.Fatal(err)
	}
	if err := r.AddPending(PendingBuild{ID: "rsv_2", Expected: time.Minute}, open); err != nil {
		t.Fatal(err)
	}
	start := testNow
	recorded, err := r.Finish(Reservation{ID: "rsv_1", ApplicationID: "app", Server: "b", StartedAt: &start}, start.Add(3*time.Minute), BuildUsage{PeakMemoryBytes: 5e8})
	if err != nil || !recorded {
		t.Fatal(recorded, err)
	}
	// Not started: released without history.
	if recorded, err := r.Finish(Reservation{ID: "rsv_x", ApplicationID: "app"}, start, BuildUsage{}); recorded || err != nil {
		t.Errorf("unstarted build recorded: %v %v", recorded, err)
	}

	again, err := OpenBuildRecords(dir)
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
	if err := again.AddPending(PendingBuild{ID: "rsv_3"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := again.Expected("rsv_2"); ok {
		t.Error("pending entry of a closed reservation kept")
	}

	// A corrupt file is an error, not an empty history.
	if err := os.WriteFile(filepath.Join(dir, buildRecordsFile), []byte("{"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBuildRecords(dir); err == nil {
		t.Error("corrupt build records accepted")
	}
}

func TestBuildRecordsKeepNewestPerApplication(t *testing.T) {
	r, _ := OpenBuildRecords("")
	for i := range maxFinishedPerApplication + 5 {
		start := testNow.Add(time.Duration(i) * time.Minute)
		if _, err := r.Finish(Reservation{ID: string(rune('A' + i)), ApplicationID: "app", StartedAt: &start}, start.Add(time.Second), BuildUsage{}); err != nil {
			t.Fatal(err)
		}
	}
	all := r.RecentBuilds("app", 1000)
	if len(all) != maxFinishedPerApplication || all[0].ID != string(rune('A'+maxFinishedPerApplication+4)) || all[len(all)-1].ID != "F" {
		t.Errorf("kept %d builds, newest %s oldest %s", len(all), all[0].ID, all[len(all)-1].ID)
	}
}

func TestBuildRecordsLastBuilds(t *testing.T) {
	r, _ := OpenBuildRecords("")
	finish := func(id, app string, start time.Time, d time.Duration) {
		t.Helper()
		if _, err := r.Finish(Reservation{ID: id, ApplicationID: app, Server: "b", StartedAt: &start}, start.Add(d), BuildUsage{}); err != nil {
			t.Fatal(err)
		}
	}
	finish("old", "gone", testNow.Add(-10*24*time.Hour), time.Minute) // ended before since
	finish("a1", "a", testNow, time.Minute)
	finish("b1", "b", testNow.Add(time.Minute), time.Minute)
	finish("a2", "a", testNow.Add(2*time.Minute), 3*time.Minute) // a's newest
	finish("c1", "c", testNow.Add(3*time.Minute), time.Minute)
	// Not started: no history, so not in the metrics either.
	if _, err := r.Finish(Reservation{ID: "d1", ApplicationID: "d"}, testNow, BuildUsage{}); err != nil {
		t.Fatal(err)
	}

	since := testNow.Add(-7 * 24 * time.Hour)
	ids := func(bs []FinishedBuild) []string {
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
	if got := ids(r.LastBuilds(testNow.Add(3*time.Minute), 10)); !slices.Equal(got, []string{"a2", "c1"}) {
		t.Errorf("since +3m: %v", got)
	}
}

func TestFinishedBuildOf(t *testing.T) {
	start := testNow
	for _, c := range []struct {
		name string
		res  Reservation
		end  time.Time
		ok   bool
	}{
		{"started with application", Reservation{ID: "r", ApplicationID: "a", Server: "b", StartedAt: &start}, start.Add(time.Minute), true},
		{"no application", Reservation{ID: "r", StartedAt: &start}, start.Add(time.Minute), false},
		{"never started", Reservation{ID: "r", ApplicationID: "a"}, start.Add(time.Minute), false},
		{"ended before start", Reservation{ID: "r", ApplicationID: "a", StartedAt: &start}, start, false},
	} {
		b, ok := FinishedBuildOf(c.res, c.end)
		if ok != c.ok {
			t.Errorf("%s: ok %v", c.name, ok)
		}
		if ok && (b.ApplicationID != "a" || b.Server != "b" || !b.StartedAt.Equal(start) || !b.EndedAt.Equal(c.end)) {
			t.Errorf("%s: %+v", c.name, b)
		}
	}
}

package placement

import (
	"os"
	"path/filepath"
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
	recorded, err := r.Finish(Reservation{ID: "rsv_1", ApplicationID: "app", Server: "b", StartedAt: &start}, start.Add(3*time.Minute))
	if err != nil || !recorded {
		t.Fatal(recorded, err)
	}
	// Not started: released without history.
	if recorded, err := r.Finish(Reservation{ID: "rsv_x", ApplicationID: "app"}, start); recorded || err != nil {
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
	if len(got) != 1 || got[0].Server != "b" || got[0].EndedAt.Sub(got[0].StartedAt) != 3*time.Minute {
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
		if _, err := r.Finish(Reservation{ID: string(rune('A' + i)), ApplicationID: "app", StartedAt: &start}, start.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	all := r.RecentBuilds("app", 1000)
	if len(all) != maxFinishedPerApplication || all[0].ID != string(rune('A'+maxFinishedPerApplication+4)) || all[len(all)-1].ID != "F" {
		t.Errorf("kept %d builds, newest %s oldest %s", len(all), all[0].ID, all[len(all)-1].ID)
	}
}

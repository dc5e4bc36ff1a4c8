package containers

import (
	"math/rand"
	"testing"
	"time"
)

const oomID = "4f1c7e0b2a9d3c6e8f5a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a"

// at is a time s seconds after the test's epoch.
func at(s float64) time.Time {
	return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(s * float64(time.Second)))
}

// running and stopped are inspections of one run of the test container.
func running(started float64, pid int) Container {
	return Container{ID: oomID, State: "running", Pid: pid, StartedAt: at(started)}
}

func stopped(started, finished float64, state string, oomKilled bool) Container {
	return Container{ID: oomID, State: state, StartedAt: at(started), FinishedAt: at(finished), OOMKilled: oomKilled}
}

// TestOOMLedger replays what the engines and the kernel report in the
// cases that matter and checks the count after each step.
func TestOOMLedger(t *testing.T) {
	type step struct {
		update    *Container // an inspection, with the engine's OOM reports ooms
		ooms      []float64  // with update, or alone: reports for an unchanged run
		kernel    float64    // > 0: a cgroup reading of the run started at kernel…
		kills     uint64     // …showing kills
		kernelLog int        // kills the kernel log reports
		want      uint64
	}
	upd := func(c Container) *Container { return &c }
	tests := []struct {
		name  string
		since float64 // when watching started
		steps []step
	}{
		{
			// Docker, --restart unless-stopped, the main process OOM-killed
			// in every run; the cgroup is never caught with its count.
			name: "docker restart loop, engine reports only",
			steps: []step{
				{update: upd(running(10, 100)), want: 0},
				{ooms: []float64{11}, want: 1},
				{update: upd(stopped(10, 11.1, "restarting", true)), want: 1},
				{update: upd(running(11.3, 101)), ooms: []float64{11.5}, want: 2},
				{update: upd(stopped(11.3, 11.6, "restarting", true)), want: 2},
				// Two runs came and went between inspections: each report is
				// a run of its own.
				{update: upd(running(15, 103)), ooms: []float64{12.5, 14}, want: 4},
			},
		},
		{
			// A child process killed twice while the main one lives on:
			// Docker reports the OOM (once per run), the cgroup counts both.
			name: "child kills, cgroup and engine agree",
			steps: []step{
				{update: upd(running(10, 100)), want: 0},
				{kernel: 10, kills: 1, want: 1},
				{ooms: []float64{10.5}, want: 1},
				{kernel: 10, kills: 2, want: 2},
				// The run ends by docker stop; OOMKilled speaks of the run.
				{update: upd(stopped(10, 20, "exited", true)), want: 2},
				// docker start: OOMKilled still true, but of the run before.
				{update: &Container{ID: oomID, State: "running", Pid: 300, StartedAt: at(30), FinishedAt: at(20), OOMKilled: true}, want: 2},
				{kernel: 30, kills: 0, want: 2},
			},
		},
		{
			// Podman reports nothing; the kernel log names each kill, and a
			// scrape caught one run's cgroup with its count.
			name: "podman, kernel log",
			steps: []step{
				{update: upd(running(10, 100)), want: 0},
				{kernelLog: 1, want: 1},
				{update: upd(running(11, 101)), kernel: 11, kills: 1, want: 1},
				{kernelLog: 1, want: 2},
				{update: upd(running(12, 102)), kernelLog: 1, want: 3},
			},
		},
		{
			// The exporter started while the run was going, after two kills.
			name:  "kills before watching are not counted",
			since: 50,
			steps: []step{
				{update: upd(running(10, 100)), want: 0},
				{kernel: 10, kills: 2, want: 0},
				{kernel: 10, kills: 3, want: 1},
				{update: upd(running(60, 101)), kernel: 60, kills: 1, want: 2},
			},
		},
		{
			name:  "OOMKilled of a run that ended before watching",
			since: 50,
			steps: []step{
				{update: upd(stopped(10, 20, "exited", true)), want: 0},
				{update: upd(running(60, 101)), want: 0},
				{update: upd(stopped(60, 70, "exited", true)), want: 1},
			},
		},
		{
			name: "a reading of an older run is dropped",
			steps: []step{
				{update: upd(running(10, 100)), want: 0},
				{update: upd(running(20, 101)), want: 0},
				{kernel: 10, kills: 5, want: 0},
				{kernel: 20, kills: 1, want: 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newOOMLedger(at(tt.since))
			var ooms []time.Time
			for i, s := range tt.steps {
				ooms = ooms[:0]
				for _, o := range s.ooms {
					ooms = append(ooms, at(o))
				}
				switch {
				case s.update != nil:
					l.update(*s.update, ooms, time.Now())
				case len(ooms) > 0:
					l.signal(oomID, ooms, time.Now())
				}
				if s.kernel > 0 {
					l.kernel(oomID, at(s.kernel), s.kills)
				}
				for range s.kernelLog {
					l.kernelLogKill(oomID, time.Now())
				}
				if got := l.total(oomID); got != s.want {
					t.Fatalf("step %d: total %d, want %d", i, got, s.want)
				}
			}
		})
	}
}

// TestOOMLedgerNeverDecreases: whatever the order and mix of reports, the
// count of a container never goes down while the container exists.
func TestOOMLedgerNeverDecreases(t *testing.T) {
	for seed := int64(1); seed <= 200; seed++ {
		rng := rand.New(rand.NewSource(seed))
		l := newOOMLedger(at(5))
		started, clock := 1.0, 1.0
		var prev uint64
		for i := 0; i < 60; i++ {
			clock += rng.Float64()
			switch rng.Intn(6) {
			case 0: // a new run
				started = clock
				l.update(running(started, 100+i), nil, time.Now())
			case 1: // the run ends, maybe OOM-killed
				l.update(stopped(started, clock, "restarting", rng.Intn(2) == 0), nil, time.Now())
			case 2:
				l.signal(oomID, []time.Time{at(clock)}, time.Now())
			case 3: // a reading, of this run or an older one
				l.kernel(oomID, at(started-float64(rng.Intn(2))), uint64(rng.Intn(4)))
			case 4:
				l.kernelLogKill(oomID, time.Now())
			case 5: // a new run seen with reports from before it
				started = clock
				l.update(running(started, 100+i), []time.Time{at(clock - 0.5), at(clock + 0.1)}, time.Now())
			}
			got := l.total(oomID)
			if got < prev {
				t.Fatalf("seed %d step %d: count went down from %d to %d", seed, i, prev, got)
			}
			prev = got
		}
	}
}

func TestOOMLedgerRetain(t *testing.T) {
	l := newOOMLedger(at(0))
	l.update(running(10, 100), []time.Time{at(11)}, at(20))
	listedAt := at(30)
	// A kill reported, after the list was asked for, for a container the
	// list could not know yet.
	l.kernelLogKill("new", at(31))
	l.retain(map[string]Container{}, listedAt)
	if got := l.total(oomID); got != 0 {
		t.Errorf("a container no longer listed still counts %d", got)
	}
	if got := l.total("new"); got != 1 {
		t.Errorf("a kill reported after the list was forgotten: count %d, want 1", got)
	}
}

// TestCacheOOMEvents: dockerd's hundreds of "oom" events per kill become
// one report per run, split by "start" events, and one sync.
func TestCacheOOMEvents(t *testing.T) {
	c := newMetadataCache(nil, newOOMLedger(at(0)), time.Minute, time.Second, testLogger(t))
	ev := func(action string, s float64) event {
		e := event{Type: "container", Action: action, TimeNano: at(s).UnixNano()}
		e.Actor.ID = oomID
		return e
	}
	c.onEvent(ev("oom", 1))
	if len(c.kick) != 1 {
		t.Fatalf("the run's first oom event asked for no sync")
	}
	<-c.kick
	for i := 1; i < 500; i++ {
		c.onEvent(ev("oom", 1+float64(i)/1000))
	}
	if len(c.kick) != 0 {
		t.Errorf("the run's later oom events asked for a sync")
	}
	c.onEvent(ev("die", 2))
	c.onEvent(ev("start", 3))
	c.onEvent(ev("oom", 4))
	c.onEvent(ev("oom", 4.1))
	if got := c.oomRuns[oomID]; len(got) != 2 || !got[0].Equal(at(1)) || !got[1].Equal(at(4)) {
		t.Errorf("reports %v, want the first oom of each run (%v, %v)", got, at(1), at(4))
	}
}

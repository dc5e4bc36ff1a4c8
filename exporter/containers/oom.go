package containers

import (
	"sync"
	"time"
)

// oomLedger counts each container's OOM kills across its runs, for
// container_oom_events_total. No single source sees them all:
//
//   - the cgroup's oom_kill counts every kill exactly, but only of the
//     current run (engines create a new cgroup for each start) and only
//     while the cgroup exists: a kill of the main process ends the run, and
//     the cgroup is usually gone before the next scrape;
//   - the engine says that a run had an OOM (Docker's "oom" events, and
//     State.OOMKilled once the run ended) but not how many kills, and
//     Podman 4 says nothing at all;
//   - the kernel log (see kernelLog) names each kill's container, but only
//     when readable (root, CAP_SYSLOG, /dev/kmsg present) and not while the
//     kernel rate-limits its OOM reports.
//
// So a run counts max(kills read from its cgroup, 1 if the engine reported
// an OOM in it), the container the sum over its runs, and the published
// count is the larger of that and the kernel log's count. Each part counts
// real kills and none of them twice, so neither does their maximum, and a
// maximum of counters never goes down. Runs are told apart by their start
// time (inspect's StartedAt), which every start changes.
//
// Kills before the exporter started watching are not counted, as any
// counter starts at zero with its process: for a run already going when
// the exporter started, the first cgroup reading is the baseline, and an
// OOMKilled flag of a run that ended before is ignored.
type oomLedger struct {
	since time.Time // when watching started

	mu   sync.Mutex
	recs map[string]*oomRecord // by container id
}

type oomRecord struct {
	past      uint64 // counted kills of the runs that ended
	run       oomRun // the newest run known
	kernelLog uint64 // kills the kernel log attributed to the container
	touched   time.Time
}

type oomRun struct {
	started   time.Time
	kernel    uint64 // highest oom_kill read from the run's cgroup
	base      uint64 // kills before watching started (a run already going)
	based     bool   // base is set: the run's cgroup was read once
	signalled bool   // the engine reported an OOM in the run
}

// count is the run's kills: those read from its cgroup, at least one if
// the engine reported an OOM.
func (r oomRun) count() uint64 {
	var n uint64
	if r.kernel > r.base {
		n = r.kernel - r.base
	}
	if n == 0 && r.signalled {
		return 1
	}
	return n
}

func newOOMLedger(since time.Time) *oomLedger {
	return &oomLedger{since: since, recs: map[string]*oomRecord{}}
}

func (l *oomLedger) record(id string, now time.Time) *oomRecord {
	r := l.recs[id]
	if r == nil {
		r = &oomRecord{}
		l.recs[id] = r
	}
	r.touched = now
	return r
}

// update takes a container's fresh inspect and the engine's OOM reports
// for it since the last update: the start time of each run in which the
// engine reported OOMs (one per run; see metadataCache.onEvent).
func (l *oomLedger) update(ct Container, ooms []time.Time, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.record(ct.ID, now)
	if ct.StartedAt.IsZero() {
		return // never started: no run, no OOM
	}
	if !ct.StartedAt.Equal(r.run.started) {
		// Reports from before this run belong to the run known so far, or
		// to runs that started and ended between two inspections (each
		// report is a run of its own).
		first := true
		for _, t := range ooms {
			if !t.Before(ct.StartedAt) {
				continue
			}
			if first && !r.run.started.IsZero() && !r.run.signalled {
				r.run.signalled = true
			} else {
				r.past++
			}
			first = false
		}
		r.past += r.run.count()
		r.run = oomRun{started: ct.StartedAt}
	}
	for _, t := range ooms {
		if !t.Before(ct.StartedAt) {
			r.run.signalled = true
		}
	}
	// Docker keeps OOMKilled from a run's end until the next one ends: it
	// speaks of this run only while no process runs.
	if ct.OOMKilled && ct.Pid == 0 && !ct.FinishedAt.Before(ct.StartedAt) && ct.FinishedAt.After(l.since) {
		r.run.signalled = true
	}
}

// signal takes the engine's OOM reports for a container whose run did not
// change since it was last inspected.
func (l *oomLedger) signal(id string, ooms []time.Time, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.record(id, now)
	for _, t := range ooms {
		if !r.run.signalled && !t.Before(r.run.started) {
			r.run.signalled = true
		} else {
			r.past++
		}
	}
}

// kernel takes a reading of the oom_kill count of the run that started at
// started. A reading of another run (metadata older than the ledger's) is
// dropped.
func (l *oomLedger) kernel(id string, started time.Time, kills uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recs[id]
	if r == nil || !r.run.started.Equal(started) || started.IsZero() {
		return
	}
	if !r.run.based {
		if started.Before(l.since) {
			r.run.base = kills
		}
		r.run.based = true
	}
	r.run.kernel = max(r.run.kernel, kills)
}

// kernelLogKill counts a kill the kernel log attributed to container id.
func (l *oomLedger) kernelLogKill(id string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record(id, now).kernelLog++
}

// total is the container's published count.
func (l *oomLedger) total(id string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recs[id]
	if r == nil {
		return 0
	}
	return max(r.past+r.run.count(), r.kernelLog)
}

// retain forgets the containers that are gone: those not listed, unless
// heard of since the list was asked for (a kill reported for a container
// created meanwhile).
func (l *oomLedger) retain(listed map[string]Container, listedAt time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, r := range l.recs {
		if _, ok := listed[id]; !ok && r.touched.Before(listedAt) {
			delete(l.recs, id)
		}
	}
}

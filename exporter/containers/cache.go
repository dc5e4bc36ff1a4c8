package containers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Container is the cached Docker metadata of one container.
type Container struct {
	ID           string
	Name         string
	Image        string
	Labels       map[string]string
	State        string // inspect's State.Status: created, running, paused, restarting, removing, exited, dead
	Pid          int
	RestartCount int
	ExitCode     int
	StartedAt    time.Time
	// FinishedAt is when the container last stopped; zero if it never did.
	FinishedAt time.Time
	// OOMKilled: the last run that ended had an OOM kill (Docker; see
	// containerInspect).
	OOMKilled   bool
	HostNetwork bool
	// Generation changes whenever the container is re-inspected (an event
	// or a state change), telling the collector to re-read its limits.
	Generation uint64
}

// Running reports whether the container has live processes (and therefore a
// cgroup to read).
func (c Container) Running() bool {
	return c.Pid > 0 && (c.State == "running" || c.State == "paused" || c.State == "restarting")
}

// errNotSynced is returned while the cache has not completed a sync yet.
var errNotSynced = errors.New("docker metadata not loaded yet")

// metadataCache keeps container metadata current from the Docker API: a full
// list at start, on every container event and periodically, inspecting only
// containers that are new, changed state or were named by an event. Scrapes
// read it without touching the API.
type metadataCache struct {
	client         *dockerClient
	ooms           *oomLedger
	logger         *slog.Logger
	relistInterval time.Duration
	requestTimeout time.Duration

	kick      chan struct{} // buffered(1): asks the loop to relist now
	attempted chan struct{} // closed after the first sync attempt, failed or not
	once      sync.Once

	mu         sync.RWMutex
	containers map[string]Container
	listState  map[string]string // state seen in the last list, to detect changes
	dirty      map[string]bool   // ids named by events since the last sync
	// oomRuns are, per container, the times of the engine's first "oom"
	// event in each run since the last sync; oomOpen marks containers whose
	// current run already has one (cleared by "start").
	oomRuns  map[string][]time.Time
	oomOpen  map[string]bool
	err      error // why the cache is not current; nil when it is
	lastSync time.Time
	// syncStart is when the newest successful sync started. listed are
	// the containers of the newest successful list, which started at
	// listStart: a sync lists first, then inspects, and an inspect can take
	// long (dockerd answers it only once a container's start is done; the
	// list never waits), so a scrape may learn which containers still
	// exist before the sync is complete. errAt is when the newest attempt
	// failed; synced is closed (and replaced) after every list, sync and
	// failed attempt, to wake refresh waiters.
	syncStart time.Time
	listed    map[string]bool
	listStart time.Time
	errAt     time.Time
	synced    chan struct{}
	// generation numbers inspections; only the run goroutine uses it.
	generation uint64
}

func newMetadataCache(client *dockerClient, ooms *oomLedger, relist, requestTimeout time.Duration, logger *slog.Logger) *metadataCache {
	return &metadataCache{
		client:         client,
		ooms:           ooms,
		logger:         logger,
		relistInterval: relist,
		requestTimeout: requestTimeout,
		kick:           make(chan struct{}, 1),
		attempted:      make(chan struct{}),
		containers:     map[string]Container{},
		listState:      map[string]string{},
		dirty:          map[string]bool{},
		oomRuns:        map[string][]time.Time{},
		oomOpen:        map[string]bool{},
		err:            errNotSynced,
		synced:         make(chan struct{}),
	}
}

// snapshot returns the current containers. Before the first sync attempt it
// waits at most wait; when the last attempt failed, or the data is older than
// it may be, it returns an error rather than stale data.
func (c *metadataCache) snapshot(ctx context.Context, wait time.Duration) ([]Container, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-c.attempted:
	case <-timer.C:
		return nil, fmt.Errorf("docker api did not answer within %s: %w", wait, errNotSynced)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.err != nil {
		c.requestSync()
		return nil, c.err
	}
	if age := time.Since(c.lastSync); age > 3*c.relistInterval {
		c.requestSync()
		return nil, fmt.Errorf("docker metadata is %s old (last successful list at %s)", age.Round(time.Second), c.lastSync.Format(time.RFC3339))
	}
	// Containers the newest list no longer has are gone, even while the
	// sync that listed them still inspects others.
	out := make([]Container, 0, len(c.containers))
	for id, ct := range c.containers {
		if c.listed[id] {
			out = append(out, ct)
		}
	}
	return out, nil
}

// refresh asks for a sync and waits at most wait for one that started
// after the request to complete, or failing that, for its list (an
// inspection that follows may wait for a container's start). It reports
// whether the list completed: snapshot then has no container removed
// before the request, and when the sync completed too, what changed.
func (c *metadataCache) refresh(ctx context.Context, wait time.Duration) bool {
	requested := time.Now()
	c.requestSync()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		c.mu.RLock()
		done, ch := c.syncStart.After(requested), c.synced
		failed := c.err != nil && c.errAt.After(requested)
		c.mu.RUnlock()
		if done || failed {
			return done
		}
		select {
		case <-ch:
		case <-timer.C:
			return c.listedSince(requested)
		case <-ctx.Done():
			return c.listedSince(requested)
		}
	}
}

// listedSince reports whether a list that started after t completed.
func (c *metadataCache) listedSince(t time.Time) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.err == nil && c.listStart.After(t)
}

// pending reports whether the cache has heard of changes it has not
// applied yet (events received, a sync asked for).
func (c *metadataCache) pending() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.err == nil && (len(c.dirty) > 0 || len(c.kick) > 0)
}

func (c *metadataCache) requestSync() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *metadataCache) setErr(err error) {
	c.mu.Lock()
	c.err = err
	c.errAt = time.Now()
	close(c.synced) // wake refresh waiters: this attempt failed
	c.synced = make(chan struct{})
	c.mu.Unlock()
	c.once.Do(func() { close(c.attempted) })
}

// errStreamEnded marks a session that ended because the events stream
// broke while the API may still be answering.
var errStreamEnded = errors.New("docker events stream ended")

// run keeps the cache current until ctx ends: connect, follow events, relist
// periodically; on any failure mark the cache failed, back off and start over.
func (c *metadataCache) run(ctx context.Context) {
	const minBackoff, maxBackoff = 500 * time.Millisecond, 10 * time.Second
	backoff := minBackoff
	lastWarned := ""
	for ctx.Err() == nil {
		c.mu.RLock()
		before := c.lastSync
		c.mu.RUnlock()
		err := c.session(ctx)
		if ctx.Err() != nil {
			return
		}
		c.mu.RLock()
		progressed := c.lastSync != before
		c.mu.RUnlock()
		if progressed {
			backoff = minBackoff
		}
		if errors.Is(err, errStreamEnded) {
			// The data may still be current: the next session's sync decides.
			c.logger.Debug("docker events stream ended, reconnecting", "err", err)
		} else {
			c.setErr(err)
			// One warning per outage (or change of cause), not per retry.
			if progressed || err.Error() != lastWarned {
				c.logger.Warn("docker api unavailable, container metrics fail until it answers", "err", err, "retry_in", backoff)
				lastWarned = err.Error()
			} else {
				c.logger.Debug("docker api still unavailable", "err", err, "retry_in", backoff)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		case <-c.kick:
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// session negotiates the API version, subscribes to events and keeps
// syncing until something fails.
func (c *metadataCache) session(ctx context.Context) error {
	nctx, cancel := context.WithTimeout(ctx, c.requestTimeout)
	err := c.client.negotiate(nctx)
	cancel()
	if err != nil {
		return fmt.Errorf("negotiating docker api version: %w", err)
	}

	ectx, stopEvents := context.WithCancel(ctx)
	streamErr := make(chan error, 1)
	var stream sync.WaitGroup
	stream.Add(1)
	go func() {
		defer stream.Done()
		streamErr <- c.client.events(ectx, c.onEvent)
	}()
	// The stream uses the client (its negotiated version): it must be gone
	// before the next session negotiates again.
	defer stream.Wait()
	defer stopEvents()

	ticker := time.NewTicker(c.relistInterval)
	defer ticker.Stop()
	for {
		if err := c.sync(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		case <-c.kick:
		case err := <-streamErr:
			// Without events the cache could miss changes for a whole relist
			// interval; reconnect (and find out whether the daemon is gone).
			return fmt.Errorf("%w: %w", errStreamEnded, err)
		}
	}
}

// onEvent marks the container an event names for re-inspection and asks for
// a sync. Exec and health-check events are frequent and change nothing the
// exporter reports.
//
// "oom" events change nothing inspect shows until the run ends (which has
// events of its own), and dockerd sends one for every OOM notification of
// the cgroup, hundreds for one kill: they only note, once per run, that
// the run had an OOM, for a sync to hand to the OOM ledger. Runs are told
// apart by "start" events, which the stream delivers in order.
func (c *metadataCache) onEvent(ev event) {
	if strings.HasPrefix(ev.Action, "exec_") || strings.HasPrefix(ev.Action, "health_status") ||
		ev.Action == "attach" || ev.Action == "top" || ev.Action == "resize" || ev.Action == "exec" {
		return
	}
	id := ev.Actor.ID
	if ev.Action == "oom" {
		if id == "" {
			return
		}
		c.mu.Lock()
		first := !c.oomOpen[id]
		if first {
			c.oomOpen[id] = true
			c.oomRuns[id] = append(c.oomRuns[id], ev.at())
		}
		c.mu.Unlock()
		if first {
			c.requestSync() // the report can come after the run's "die"
		}
		return
	}
	if id != "" {
		c.mu.Lock()
		c.dirty[id] = true
		if ev.Action == "start" {
			delete(c.oomOpen, id)
		}
		c.mu.Unlock()
	}
	c.requestSync()
}

// sync lists containers and inspects the ones that are new or changed.
func (c *metadataCache) sync(ctx context.Context) error {
	started := time.Now()
	lctx, cancel := context.WithTimeout(ctx, c.requestTimeout)
	summaries, err := c.client.list(lctx)
	cancel()
	if err != nil {
		return fmt.Errorf("listing containers: %w", err)
	}

	// OOM reports are taken with the ids to re-inspect: one that arrives
	// after this point waits for the next sync, whose inspections are
	// newer than it (see oomLedger.update).
	listed := make(map[string]bool, len(summaries))
	for _, s := range summaries {
		listed[s.ID] = true
	}
	c.mu.Lock()
	dirty, oomRuns := c.dirty, c.oomRuns
	c.dirty, c.oomRuns = map[string]bool{}, map[string][]time.Time{}
	old := c.containers
	oldState := c.listState
	c.listed, c.listStart = listed, started
	close(c.synced) // wake refresh waiters: the list is newer
	c.synced = make(chan struct{})
	c.mu.Unlock()

	inspected := 0
	defer func() {
		c.logger.Debug("docker metadata sync", "containers", len(summaries), "inspected", inspected, "duration_seconds", time.Since(started).Seconds())
	}()
	next := make(map[string]Container, len(summaries))
	nextState := make(map[string]string, len(summaries))
	inspectedIDs := make(map[string]bool)
	for _, s := range summaries {
		prev, known := old[s.ID]
		if known && oldState[s.ID] == s.State && !dirty[s.ID] {
			next[s.ID] = prev
			nextState[s.ID] = s.State
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, c.requestTimeout)
		details, err := c.client.inspect(ictx, s.ID)
		cancel()
		inspected++
		if isNotFound(err) {
			continue // removed between list and inspect
		}
		if err != nil {
			// Keep the other changes for the next attempt.
			c.mu.Lock()
			for id := range dirty {
				c.dirty[id] = true
			}
			for id, runs := range oomRuns {
				c.oomRuns[id] = append(runs, c.oomRuns[id]...)
			}
			c.mu.Unlock()
			return fmt.Errorf("inspecting container %s: %w", shortID(s.ID), err)
		}
		c.generation++
		ct := fromInspect(details)
		ct.Generation = c.generation
		next[s.ID] = ct
		nextState[s.ID] = s.State
		inspectedIDs[s.ID] = true
	}

	now := time.Now()
	for id, ct := range next {
		if inspectedIDs[id] {
			c.ooms.update(ct, oomRuns[id], now)
		} else if runs := oomRuns[id]; len(runs) > 0 {
			c.ooms.signal(id, runs, now)
		}
	}
	c.ooms.retain(next, started)

	c.mu.Lock()
	c.containers = next
	c.listState = nextState
	for id := range c.oomOpen {
		if _, ok := next[id]; !ok && len(c.oomRuns[id]) == 0 {
			delete(c.oomOpen, id)
		}
	}
	c.err = nil
	c.lastSync = time.Now()
	c.syncStart = started
	close(c.synced)
	c.synced = make(chan struct{})
	c.mu.Unlock()
	c.once.Do(func() { close(c.attempted) })
	return nil
}

// fromInspect takes the state and the pid from the same answer: the list's
// state can be older or newer than the inspect that follows it (Docker sets
// pid 0 while a container is "restarting"; a list saying "running" next to
// that pid would report a running container without a process).
func fromInspect(d containerInspect) Container {
	ct := Container{
		ID:           d.ID,
		Name:         strings.TrimPrefix(d.Name, "/"),
		Image:        d.Config.Image,
		Labels:       d.Config.Labels,
		State:        d.State.Status,
		Pid:          d.State.Pid,
		RestartCount: d.RestartCount,
		ExitCode:     d.State.ExitCode,
		OOMKilled:    d.State.OOMKilled,
		HostNetwork:  d.HostConfig.NetworkMode == "host",
	}
	if t, err := time.Parse(time.RFC3339Nano, d.State.StartedAt); err == nil && t.Year() > 1 {
		ct.StartedAt = t
	}
	if t, err := time.Parse(time.RFC3339Nano, d.State.FinishedAt); err == nil && t.Year() > 1 {
		ct.FinishedAt = t
	}
	return ct
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

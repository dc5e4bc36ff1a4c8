package api

import (
	"github.com/berth-dev/berth/placement/build"
	"github.com/berth-dev/berth/placement/policy"

	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-dev/berth/placement"
)

// BuildsConfig configures the build endpoints.
type BuildsConfig struct {
	// Records keeps the expected duration of open build reservations and
	// the finished builds behind history estimates; nil keeps them in
	// memory only (lost on restart).
	Records *build.Records
	// History looks up past builds in Prometheus; nil: estimates come from
	// the policy's profiles only.
	History build.History
}

// BuildServerList is GET /api/v1/build-servers.
type BuildServerList struct {
	TakenAt time.Time    `json:"taken_at"`
	Servers []build.Load `json:"servers"`
}

// BuildEstimateBody is POST /api/v1/builds/estimate.
type BuildEstimateBody struct {
	ApplicationID    string   `json:"application_id,omitempty"`
	BuildPack        string   `json:"build_pack,omitempty"`
	Profile          string   `json:"profile,omitempty"`
	RepositorySizeMB *float64 `json:"repository_size_mb,omitempty"`
}

// BuildPlacementRequest is POST /api/v1/builds/placements.
type BuildPlacementRequest struct {
	ApplicationID    string   `json:"application_id,omitempty"`
	BuildPack        string   `json:"build_pack,omitempty"`
	Profile          string   `json:"profile,omitempty"`
	RepositorySizeMB *float64 `json:"repository_size_mb,omitempty"`
	// Requirements override the estimate per dimension (a dimension absent
	// or 0 uses the estimate); cpu is checked only when given.
	Requirements   *placement.Resources `json:"requirements,omitempty"`
	Reserve        bool                 `json:"reserve,omitempty"`
	IdempotencyKey string               `json:"idempotency_key,omitempty"`
	TTL            *Duration            `json:"ttl,omitempty"`
}

// BuildPlacementResponse is the answer to a build placement.
type BuildPlacementResponse struct {
	Placed  bool          `json:"placed"`
	Outcome build.Outcome `json:"outcome"`
	// BuildOnDeploymentServer is true when the fleet has no build server:
	// the deployment server builds (Coolify's fallback).
	BuildOnDeploymentServer bool   `json:"build_on_deployment_server"`
	Chosen                  string `json:"chosen,omitempty"`
	// Score is the chosen server's load score (lower is better).
	Score float64 `json:"score"`
	// Ranking lists the build servers that can take the build, least
	// loaded first; Score there is the load score.
	Ranking    []placement.Ranked   `json:"ranking"`
	Rejected   []placement.Rejected `json:"rejected"`
	Considered int                  `json:"considered"`
	Summary    string               `json:"summary"`
	// Wait is the shortest expected wait when every build server is full.
	Wait *build.Wait `json:"wait,omitempty"`
	// TieBreak is set when the chosen server won a tie-break among servers
	// within builds.tie_tolerance of the least loaded, rather than being
	// the single least loaded one.
	TieBreak *build.TieBreak `json:"tie_break,omitempty"`
	// Servers is every build server's load as the decision saw it.
	Servers  []build.Load   `json:"servers"`
	Estimate build.Estimate `json:"estimate"`
	// Requirements are what was checked (and reserved): the estimate's
	// memory and disk unless the request overrode them.
	Requirements placement.Resources    `json:"requirements"`
	Reservation  *placement.Reservation `json:"reservation,omitempty"`
	Replayed     bool                   `json:"replayed,omitempty"`
}

// BuildStartRequest is the optional body of POST /api/v1/builds/{id}/start.
type BuildStartRequest struct {
	// TTL renews the reservation from the start; default: twice the
	// build's expected duration, at least reservations.default_ttl, at
	// most reservations.max_ttl.
	TTL *Duration `json:"ttl,omitempty"`
}

// BuildFinishResponse is the answer to POST /api/v1/builds/{id}/finish.
type BuildFinishResponse struct {
	Reservation placement.Reservation `json:"reservation"`
	// HistoryRecorded is true when the build joins its application's
	// history (it had an application_id and was started).
	HistoryRecorded bool `json:"history_recorded"`
}

// builds holds the build endpoints' state.
type builds struct {
	api       *API
	records   *build.Records
	estimator *build.Estimator
	history   build.History
	metrics   *buildMetrics
}

// peakLookupTimeout bounds the one history query a finish makes, so a slow
// Prometheus delays the deployer's finish call by at most this much.
const peakLookupTimeout = 5 * time.Second

// buildRoutes creates the build endpoints. Their metrics are registered
// here, where the routes are made, so that the API's constructor needs no
// knowledge of builds; a registration failure (a programming error: the
// names are fixed) is logged and the endpoints work without metrics.
func (a *API) buildRoutes() []route {
	cfg := BuildsConfig{}
	if a.opts.Builds != nil {
		cfg = *a.opts.Builds
	}
	if cfg.Records == nil {
		cfg.Records, _ = build.OpenRecords("") // in memory: cannot fail
	}
	a.buildExpected = cfg.Records.Expected
	b := &builds{
		api:       a,
		records:   cfg.Records,
		estimator: build.NewEstimator(cfg.Records, cfg.History, a.logger),
		history:   cfg.History,
		metrics:   newBuildMetrics(a.opts.Placer.Store().List, a.opts.Policy.Policy, cfg.Records),
	}
	if err := b.metrics.register(a.opts.Registerer); err != nil {
		a.logger.Error("build metrics not registered", "err", err)
	}
	return []route{
		{http.MethodGet, "/build-servers", "List build servers with their load, running and queued builds, cap and load score", b.listBuildServers},
		{http.MethodGet, "/build-servers/:server", "One build server", b.getBuildServer},
		{http.MethodPost, "/builds/placements", "Choose the least-loaded build server with room, optionally reserving a build slot", b.createBuildPlacement},
		{http.MethodPost, "/builds/estimate", "Estimate a build's CPU, memory, disk and duration", b.estimateBuild},
		{http.MethodPost, "/builds/:id/start", "Mark a reserved build started (queued → active)", b.startBuild},
		{http.MethodPost, "/builds/:id/finish", "Mark a build ended: release its reservation and record it for history", b.finishBuild},
	}
}

func (b *builds) listBuildServers(c echo.Context) error {
	snap, err := b.api.snapshot(c.Request().Context())
	if err != nil {
		return err
	}
	loads := build.Loads(b.api.opts.Policy.Policy(), snap, b.api.opts.Placer.Store().List())
	b.metrics.see(snap, loads)
	return c.JSON(http.StatusOK, BuildServerList{TakenAt: snap.Taken, Servers: loads})
}

func (b *builds) getBuildServer(c echo.Context) error {
	name := c.Param("server")
	snap, err := b.api.snapshot(c.Request().Context())
	if err != nil {
		return err
	}
	s, ok := snap.Servers[name]
	if !ok {
		return notFound("server", "server %q is not in the fleet (GET %s/build-servers lists the build servers)", name, Prefix)
	}
	if s.Role != placement.RoleBuild {
		return notFound("server", "server %q is not a build server (its role is %q)", name, s.Role)
	}
	load := build.LoadOf(b.api.opts.Policy.Policy(), s, b.api.opts.Placer.Store().List())
	b.metrics.see(snap, []build.Load{load})
	return c.JSON(http.StatusOK, load)
}

func (b *builds) estimateBuild(c echo.Context) error {
	var body BuildEstimateBody
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	est, err := b.estimate(c, build.EstimateRequest{
		ApplicationID: body.ApplicationID, BuildPack: body.BuildPack, Profile: body.Profile, RepositorySizeMB: body.RepositorySizeMB,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, est)
}

func (b *builds) estimate(c echo.Context, req build.EstimateRequest) (build.Estimate, error) {
	est, historyErr, err := b.estimator.Estimate(c.Request().Context(), b.api.opts.Policy.Policy(), req)
	if err != nil {
		return est, placeError(err)
	}
	if historyErr != nil {
		b.metrics.historyErrors.Inc()
	}
	return est, nil
}

func (b *builds) createBuildPlacement(c echo.Context) error {
	p := b.api.opts.Policy.Policy()
	raw, body, err := decodeBuildPlacement(c, p)
	if err != nil {
		return err
	}
	if body.TTL != nil && !body.Reserve {
		return invalidArgument("ttl", "ttl only applies with \"reserve\": true")
	}
	ttl, err := reservationTTL(body.TTL, p)
	if err != nil {
		return err
	}
	est, err := b.estimate(c, build.EstimateRequest{
		ApplicationID: body.ApplicationID, BuildPack: body.BuildPack, Profile: body.Profile, RepositorySizeMB: body.RepositorySizeMB,
	})
	if err != nil {
		return err
	}
	need := placement.Resources{Memory: est.Memory, Disk: est.Disk}
	if r := body.Requirements; r != nil {
		need.CPU = r.CPU
		if r.Memory > 0 {
			need.Memory = r.Memory
		}
		if r.Disk > 0 {
			need.Disk = r.Disk
		}
	}
	snap, err := b.api.snapshot(c.Request().Context())
	if err != nil {
		return err
	}
	records := b.records
	decider := &build.Decider{Expected: records.Expected}
	req := placement.Request{
		Kind:           placement.KindBuild,
		Requirements:   need,
		ApplicationID:  body.ApplicationID,
		Reserve:        body.Reserve,
		IdempotencyKey: body.IdempotencyKey,
		TTL:            ttl,
		Fingerprint:    raw,
	}
	dec, err := b.api.opts.Placer.PlaceWith(snap, req, decider)
	if err != nil {
		b.api.metrics.decision(string(placement.KindBuild), "error", nil)
		return placeError(err)
	}
	out := BuildPlacementResponse{
		Placed:       dec.Chosen != "",
		Outcome:      decider.Outcome,
		Chosen:       dec.Chosen,
		Score:        dec.Score,
		Ranking:      dec.Ranking,
		Rejected:     dec.Rejected,
		Considered:   dec.Considered,
		Summary:      dec.Summary,
		Wait:         decider.Wait,
		TieBreak:     decider.TieBreak,
		Servers:      decider.Loads,
		Estimate:     est,
		Requirements: need,
		Reservation:  dec.Reservation,
		Replayed:     dec.Replayed,
	}
	if dec.Replayed {
		// The first answer is replayed; the loads are today's, and no
		// tie-break decided this time.
		out.Outcome = build.Placed
		out.TieBreak = nil
		out.Servers = build.Loads(p, snap, b.api.opts.Placer.Store().List())
		if dec.Reservation != nil {
			out.Requirements = dec.Reservation.Resources
		}
	} else {
		outcome := "placed"
		if dec.Chosen == "" {
			outcome = "no_fit"
		}
		b.api.metrics.decision(string(placement.KindBuild), outcome, rejectionReasons(dec))
		if dec.Reservation != nil {
			if err := records.AddPending(build.Pending{ID: dec.Reservation.ID, ApplicationID: body.ApplicationID, Expected: est.Duration}, b.api.opts.Placer.Store().List()); err != nil {
				// The reservation stands; only the wait estimates of later
				// requests lose this build's duration.
				b.api.logger.Error("recording build estimate", "reservation", dec.Reservation.ID, "err", err)
			}
		}
	}
	out.BuildOnDeploymentServer = out.Outcome == build.OnDeploymentServer
	if out.Ranking == nil {
		out.Ranking = []placement.Ranked{}
	}
	if out.Rejected == nil {
		out.Rejected = []placement.Rejected{}
	}
	if out.Servers == nil {
		out.Servers = []build.Load{}
	}
	b.metrics.see(snap, out.Servers)
	return c.JSON(http.StatusOK, out)
}

// decodeBuildPlacement decodes and validates the body, returning the
// fingerprint of what was asked (everything but the idempotency key) for
// idempotent retries.
func decodeBuildPlacement(c echo.Context, p *policy.Policy) (string, BuildPlacementRequest, error) {
	var body BuildPlacementRequest
	if err := decodeJSON(c, &body); err != nil {
		return "", body, err
	}
	// The fingerprint is of what the request means: everything but the
	// key, with a reservation's TTL made explicit (a retry that spells out
	// the default asks the same), and "" the same as absent (omitempty).
	canonical := body
	canonical.IdempotencyKey = ""
	if canonical.Reserve && canonical.TTL == nil {
		d := Duration(p.Reservations.DefaultTTL)
		canonical.TTL = &d
	}
	raw, err := json.Marshal(canonical)
	if err != nil {
		return "", body, err
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:]), body, nil
}

func (b *builds) startBuild(c echo.Context) error {
	var body BuildStartRequest
	if err := decodeOptionalJSON(c, &body); err != nil {
		return err
	}
	id := c.Param("id")
	store := b.api.opts.Placer.Store()
	res, err := store.Get(id)
	if err != nil {
		return reservationError(err)
	}
	if res.Kind != placement.KindBuild {
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Field: "id", Message: "reservation " + id + " is a " + string(res.Kind) + " reservation, not a build"}
	}
	p := b.api.opts.Policy.Policy()
	ttl, err := reservationTTL(body.TTL, p)
	if err != nil {
		return err
	}
	if body.TTL == nil {
		expected, ok := b.records.Expected(id)
		if !ok {
			expected = p.Builds.Profiles[p.Builds.DefaultProfile].Duration
		}
		ttl = min(max(2*expected, p.Reservations.DefaultTTL), p.Reservations.MaxTTL)
	}
	res, err = store.Start(id, ttl)
	if err != nil {
		return reservationError(err)
	}
	return c.JSON(http.StatusOK, res)
}

func (b *builds) finishBuild(c echo.Context) error {
	if err := decodeNoBody(c); err != nil {
		return err
	}
	id := c.Param("id")
	store := b.api.opts.Placer.Store()
	res, err := store.Get(id)
	if err != nil {
		return reservationError(err)
	}
	if res.Kind != placement.KindBuild {
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Field: "id", Message: "reservation " + id + " is a " + string(res.Kind) + " reservation, not a build"}
	}
	res, err = store.Release(id)
	if err != nil {
		return reservationError(err)
	}
	ended := time.Now()
	var usage build.Usage
	if fb, ok := build.FinishedOf(res, ended); ok {
		usage = b.lookupUsage(c.Request().Context(), fb)
	}
	recorded, err := b.records.Finish(res, ended, usage)
	if err != nil {
		// The build is released; only its history entry is lost.
		b.api.logger.Error("recording finished build", "reservation", id, "err", err)
	}
	b.metrics.finished(res, ended)
	return c.JSON(http.StatusOK, BuildFinishResponse{Reservation: res, HistoryRecorded: recorded})
}

// lookupUsage asks the build history (one query) what the container of a
// build that just finished used, kept with the build for estimates and
// berth_build_last_peak_memory_bytes. Zero when there is no history
// source, no container was found, or the query failed (counted and
// logged: the finish itself succeeds).
func (b *builds) lookupUsage(ctx context.Context, fb build.Finished) build.Usage {
	if b.history == nil {
		return build.Usage{}
	}
	ctx, cancel := context.WithTimeout(ctx, peakLookupTimeout)
	defer cancel()
	u, ok, err := b.history.BuildUsage(ctx, fb)
	if err != nil {
		b.metrics.peakErrors.Inc()
		b.api.logger.Warn("looking up the usage of a finished build failed", "reservation", fb.ID, "application_id", fb.ApplicationID, "err", err)
		return build.Usage{}
	}
	if !ok {
		return build.Usage{}
	}
	return u
}

// decodeOptionalJSON is decodeJSON for endpoints whose body may be empty.
func decodeOptionalJSON(c echo.Context, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge, Message: "request body too large"}
		}
		return invalidArgument("", "reading request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	return decodeBody(body, v)
}

// Bounds of the per-application build metrics: only applications whose
// last build finished within buildMetricsMaxAge, and at most
// buildMetricsMaxApplications of them (the most recent), so the series
// count stays bounded however many applications build.
const (
	buildMetricsMaxAge          = 7 * 24 * time.Hour
	buildMetricsMaxApplications = 100
	// loadScoreMaxAge is how long a build server's load score is exported
	// after the last snapshot a build request read: the score's CPU and
	// memory terms come from that snapshot, so it is not shown stale.
	loadScoreMaxAge = 5 * time.Minute
)

// buildDurationBuckets cover builds from half a minute to two hours.
var buildDurationBuckets = []float64{30, 60, 120, 180, 300, 600, 900, 1200, 1800, 2700, 3600, 7200}

// lastBuilds gives the newest finished build of each recent application.
type lastBuilds interface {
	LastBuilds(since time.Time, n int) []build.Finished
}

// seenServer is a build server's state in the newest snapshot a build
// request read, kept to export its load score between requests.
type seenServer struct {
	state *placement.ServerState
	taken time.Time
}

// buildMetrics are the build-specific metrics; decisions and rejections
// use berth_placement_decisions_total and _rejections_total with
// kind="build".
type buildMetrics struct {
	list    func() []placement.Reservation
	policy  func() *policy.Policy
	records lastBuilds
	now     func() time.Time

	maxAge          time.Duration
	maxApplications int

	queueDesc, capDesc, scoreDesc  *prometheus.Desc
	lastDurationDesc, lastPeakDesc *prometheus.Desc
	lastEndDesc                    *prometheus.Desc
	historyErrors, peakErrors      prometheus.Counter
	durations                      *prometheus.HistogramVec

	mu    sync.Mutex
	known map[string]bool       // build servers seen, so their gauges read 0 rather than vanish
	seen  map[string]seenServer // their state in the newest snapshot a request read
}

func newBuildMetrics(list func() []placement.Reservation, policies func() *policy.Policy, records lastBuilds) *buildMetrics {
	app := []string{"application_id", "server"}
	return &buildMetrics{
		list:            list,
		policy:          policies,
		records:         records,
		now:             time.Now,
		maxAge:          buildMetricsMaxAge,
		maxApplications: buildMetricsMaxApplications,
		queueDesc: prometheus.NewDesc("berth_build_queue_length",
			"Build reservations not started yet (queued), by build server.", []string{"server"}, nil),
		capDesc: prometheus.NewDesc("berth_build_concurrency_limit",
			"Concurrent builds allowed on a build server (policy builds.concurrent_builds or its per-server override).", []string{"server"}, nil),
		scoreDesc: prometheus.NewDesc("berth_build_server_load_score",
			fmt.Sprintf("Load score placement ranks a build server by (lower is better), with the policy's weights: CPU and memory from the newest snapshot a build request read (at most %g minutes old), queued and running builds from the reservations now.", loadScoreMaxAge.Minutes()), []string{"server"}, nil),
		lastDurationDesc: prometheus.NewDesc("berth_build_last_duration_seconds",
			fmt.Sprintf("Duration (start to finish) of the application's newest finished build; the %d applications that built most recently within %d days.", buildMetricsMaxApplications, int(buildMetricsMaxAge.Hours()/24)), app, nil),
		lastPeakDesc: prometheus.NewDesc("berth_build_last_peak_memory_bytes",
			"Peak working set of the application's newest finished build, looked up in Prometheus when it finished; absent when no build container was found.", app, nil),
		lastEndDesc: prometheus.NewDesc("berth_build_last_finished_timestamp_seconds",
			"When the application's newest finished build ended, Unix time.", app, nil),
		historyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_placement_build_history_errors_total",
			Help: "Build estimates that fell back to the profile because the build history query failed.",
		}),
		peakErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_placement_build_peak_errors_total",
			Help: "Finished builds whose peak memory could not be looked up because the build history query failed.",
		}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "berth_build_duration_seconds",
			Help:    "Duration of builds placed by berth-placement, from start to finish, by build server.",
			Buckets: buildDurationBuckets,
		}, []string{"server"}),
		known: map[string]bool{},
		seen:  map[string]seenServer{},
	}
}

func (m *buildMetrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m, m.historyErrors, m.peakErrors, m.durations} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// see remembers build servers a request looked at, and their state in the
// snapshot it read.
func (m *buildMetrics) see(snap *placement.Snapshot, loads []build.Load) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range loads {
		if !m.known[l.Server] {
			m.known[l.Server] = true
			// The histogram starts at 0, so the first build's increase shows.
			m.durations.WithLabelValues(l.Server)
		}
		s, ok := snap.Servers[l.Server]
		if !ok {
			continue
		}
		if prev, ok := m.seen[l.Server]; !ok || !snap.Taken.Before(prev.taken) {
			m.seen[l.Server] = seenServer{state: s, taken: snap.Taken}
		}
	}
}

// finished observes the duration of a build that was started.
func (m *buildMetrics) finished(res placement.Reservation, ended time.Time) {
	if res.StartedAt == nil || !ended.After(*res.StartedAt) {
		return
	}
	m.durations.WithLabelValues(res.Server).Observe(ended.Sub(*res.StartedAt).Seconds())
}

// Describe implements prometheus.Collector.
func (m *buildMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.queueDesc
	ch <- m.capDesc
	ch <- m.scoreDesc
	ch <- m.lastDurationDesc
	ch <- m.lastPeakDesc
	ch <- m.lastEndDesc
}

// Collect implements prometheus.Collector, reading the reservation store
// and the build records at scrape time so the gauges cannot drift from
// them.
func (m *buildMetrics) Collect(ch chan<- prometheus.Metric) {
	now := m.now()
	queued := map[string]int{}
	var scored []seenServer
	m.mu.Lock()
	for s := range m.known {
		queued[s] = 0
	}
	for _, s := range m.seen {
		if now.Sub(s.taken) <= loadScoreMaxAge {
			scored = append(scored, s)
		}
	}
	m.mu.Unlock()
	open := m.list()
	for _, r := range open {
		if r.Kind != placement.KindBuild {
			continue
		}
		if _, ok := queued[r.Server]; !ok {
			queued[r.Server] = 0
		}
		if r.State == placement.StateQueued {
			queued[r.Server]++
		}
	}
	p := m.policy()
	servers := make([]string, 0, len(queued))
	for s := range queued {
		servers = append(servers, s)
	}
	slices.Sort(servers)
	for _, s := range servers {
		ch <- prometheus.MustNewConstMetric(m.queueDesc, prometheus.GaugeValue, float64(queued[s]), s)
		ch <- prometheus.MustNewConstMetric(m.capDesc, prometheus.GaugeValue, float64(p.Builds.ConcurrentBuildsFor(s)), s)
	}
	for _, s := range scored {
		l := build.LoadOf(p, s.state, open)
		ch <- prometheus.MustNewConstMetric(m.scoreDesc, prometheus.GaugeValue, l.Score, l.Server)
	}
	for _, b := range m.records.LastBuilds(now.Add(-m.maxAge), m.maxApplications) {
		ch <- prometheus.MustNewConstMetric(m.lastDurationDesc, prometheus.GaugeValue, b.EndedAt.Sub(b.StartedAt).Seconds(), b.ApplicationID, b.Server)
		ch <- prometheus.MustNewConstMetric(m.lastEndDesc, prometheus.GaugeValue, float64(b.EndedAt.UnixMilli())/1000, b.ApplicationID, b.Server)
		if b.Usage.PeakMemoryBytes > 0 {
			ch <- prometheus.MustNewConstMetric(m.lastPeakDesc, prometheus.GaugeValue, b.Usage.PeakMemoryBytes, b.ApplicationID, b.Server)
		}
	}
}

package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	Records *placement.BuildRecords
	// History looks up past builds in Prometheus; nil: estimates come from
	// the policy's profiles only.
	History placement.BuildHistory
}

// BuildServerList is GET /api/v1/build-servers.
type BuildServerList struct {
	TakenAt time.Time             `json:"taken_at"`
	Servers []placement.BuildLoad `json:"servers"`
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
	Placed  bool                   `json:"placed"`
	Outcome placement.BuildOutcome `json:"outcome"`
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
	Wait *placement.BuildWait `json:"wait,omitempty"`
	// Servers is every build server's load as the decision saw it.
	Servers  []placement.BuildLoad   `json:"servers"`
	Estimate placement.BuildEstimate `json:"estimate"`
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
	records   *placement.BuildRecords
	estimator *placement.BuildEstimator
	metrics   *buildMetrics
}

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
		cfg.Records, _ = placement.OpenBuildRecords("") // in memory: cannot fail
	}
	b := &builds{
		api:       a,
		records:   cfg.Records,
		estimator: placement.NewBuildEstimator(cfg.Records, cfg.History, a.logger),
		metrics:   newBuildMetrics(a.opts.Placer.Store().List, a.opts.Policy.Policy),
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
	loads := b.api.opts.Policy.Policy().BuildLoads(snap, b.api.opts.Placer.Store().List())
	b.metrics.see(loads)
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
	load := b.api.opts.Policy.Policy().BuildLoadOf(s, b.api.opts.Placer.Store().List())
	b.metrics.see([]placement.BuildLoad{load})
	return c.JSON(http.StatusOK, load)
}

func (b *builds) estimateBuild(c echo.Context) error {
	var body BuildEstimateBody
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	est, err := b.estimate(c, placement.BuildEstimateRequest{
		ApplicationID: body.ApplicationID, BuildPack: body.BuildPack, Profile: body.Profile, RepositorySizeMB: body.RepositorySizeMB,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, est)
}

func (b *builds) estimate(c echo.Context, req placement.BuildEstimateRequest) (placement.BuildEstimate, error) {
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
	raw, body, err := decodeBuildPlacement(c)
	if err != nil {
		return err
	}
	p := b.api.opts.Policy.Policy()
	if err := placement.ValidateIdentifier(body.IdempotencyKey); err != nil {
		return invalidArgument("idempotency_key", "idempotency_key: %s", err.Error())
	}
	var ttl time.Duration
	if body.TTL != nil {
		if !body.Reserve {
			return invalidArgument("ttl", "ttl only applies with \"reserve\": true")
		}
		if *body.TTL == 0 {
			return invalidArgument("ttl", "ttl must be positive (omit it for the policy's default)")
		}
		if ttl = durationOf(*body.TTL); ttl > p.Reservations.MaxTTL {
			return unprocessable("ttl", "ttl %s is above the policy's reservations.max_ttl %s", body.TTL.String(), Duration(p.Reservations.MaxTTL).String())
		}
	}
	est, err := b.estimate(c, placement.BuildEstimateRequest{
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
	decider := &placement.BuildDecider{Expected: records.Expected}
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
		Servers:      decider.Loads,
		Estimate:     est,
		Requirements: need,
		Reservation:  dec.Reservation,
		Replayed:     dec.Replayed,
	}
	if dec.Replayed {
		// The first answer is replayed; the loads are today's.
		out.Outcome = placement.BuildPlaced
		out.Servers = p.BuildLoads(snap, b.api.opts.Placer.Store().List())
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
			if err := records.AddPending(placement.PendingBuild{ID: dec.Reservation.ID, ApplicationID: body.ApplicationID, Expected: est.Duration}, b.api.opts.Placer.Store().List()); err != nil {
				// The reservation stands; only the wait estimates of later
				// requests lose this build's duration.
				b.api.logger.Error("recording build estimate", "reservation", dec.Reservation.ID, "err", err)
			}
		}
	}
	out.BuildOnDeploymentServer = out.Outcome == placement.BuildOnDeploymentServer
	if out.Ranking == nil {
		out.Ranking = []placement.Ranked{}
	}
	if out.Rejected == nil {
		out.Rejected = []placement.Rejected{}
	}
	if out.Servers == nil {
		out.Servers = []placement.BuildLoad{}
	}
	b.metrics.see(out.Servers)
	return c.JSON(http.StatusOK, out)
}

// decodeBuildPlacement decodes and validates the body, returning the
// fingerprint of what was asked (everything but the idempotency key) for
// idempotent retries.
func decodeBuildPlacement(c echo.Context) (string, BuildPlacementRequest, error) {
	var body BuildPlacementRequest
	if err := decodeJSON(c, &body); err != nil {
		return "", body, err
	}
	key := body.IdempotencyKey
	body.IdempotencyKey = ""
	canonical, err := json.Marshal(body)
	if err != nil {
		return "", body, err
	}
	body.IdempotencyKey = key
	sum := sha256.Sum256(canonical)
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
	var ttl time.Duration
	if body.TTL != nil {
		if *body.TTL == 0 {
			return invalidArgument("ttl", "ttl must be positive (omit it for the default)")
		}
		if ttl = durationOf(*body.TTL); ttl > p.Reservations.MaxTTL {
			return unprocessable("ttl", "ttl %s is above the policy's reservations.max_ttl %s", body.TTL.String(), Duration(p.Reservations.MaxTTL).String())
		}
	} else {
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
	recorded, err := b.records.Finish(res, time.Now())
	if err != nil {
		// The build is released; only its history entry is lost.
		b.api.logger.Error("recording finished build", "reservation", id, "err", err)
	}
	return c.JSON(http.StatusOK, BuildFinishResponse{Reservation: res, HistoryRecorded: recorded})
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

// buildMetrics are the build-specific metrics; decisions and rejections
// use berth_placement_decisions_total and _rejections_total with
// kind="build".
type buildMetrics struct {
	list   func() []placement.Reservation
	policy func() *placement.Policy

	queueDesc, capDesc *prometheus.Desc
	historyErrors      prometheus.Counter

	mu    sync.Mutex
	known map[string]bool // build servers seen, so their gauges read 0 rather than vanish
}

func newBuildMetrics(list func() []placement.Reservation, policy func() *placement.Policy) *buildMetrics {
	return &buildMetrics{
		list:   list,
		policy: policy,
		queueDesc: prometheus.NewDesc("berth_build_queue_length",
			"Build reservations not started yet (queued), by build server.", []string{"server"}, nil),
		capDesc: prometheus.NewDesc("berth_build_concurrency_limit",
			"Concurrent builds allowed on a build server (policy builds.concurrent_builds or its per-server override).", []string{"server"}, nil),
		historyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_placement_build_history_errors_total",
			Help: "Build estimates that fell back to the profile because the build history query failed.",
		}),
		known: map[string]bool{},
	}
}

func (m *buildMetrics) register(reg prometheus.Registerer) error {
	if err := reg.Register(m); err != nil {
		return err
	}
	return reg.Register(m.historyErrors)
}

// see remembers build servers a request looked at.
func (m *buildMetrics) see(loads []placement.BuildLoad) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range loads {
		m.known[l.Server] = true
	}
}

// Describe implements prometheus.Collector.
func (m *buildMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.queueDesc
	ch <- m.capDesc
}

// Collect implements prometheus.Collector, reading the reservation store
// at scrape time so the gauge cannot drift from it.
func (m *buildMetrics) Collect(ch chan<- prometheus.Metric) {
	queued := map[string]int{}
	m.mu.Lock()
	for s := range m.known {
		queued[s] = 0
	}
	m.mu.Unlock()
	for _, r := range m.list() {
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
}

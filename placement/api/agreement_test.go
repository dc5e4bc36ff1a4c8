package api

import (
	"github.com/berth-dev/berth/placement/build"
	"github.com/berth-dev/berth/placement/fit"
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/quota"

	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/berth-dev/berth/placement"
)

// agreementFleet holds one server per refusal a check can meet, beside
// fresh app and build servers, so that every reason code has a case.
func agreementFleet() *placement.Snapshot {
	now := time.Now()
	snap := testFleet() // app-1 (acme), app-2 (globex), build-1, app-stale
	missing := server("app-missing", "app", "acme", 8, 16, 100, 30*time.Minute, now)
	snap.Servers[missing.Name] = missing
	full := server("build-full", "build", "", 16, 32, 200, 5*time.Second, now)
	full.Containers.BuildsActive = 2 // the default cap, builds.concurrent_builds
	snap.Servers[full.Name] = full
	return snap
}

// TestCheckAndPlaceAgree: for every reason code, POST /placements/check
// and a placement over the same state (the server as the only candidate;
// for builds, the build placement's line for that server) give the same
// answer.
func TestCheckAndPlaceAgree(t *testing.T) {
	e := newTestEnv(t)
	e.fleet.snap = agreementFleet()
	// app-1: 8 cores, 16 GiB, 100 GiB disk (60 free, threshold 80 %).
	cases := []struct {
		name, server string
		kind         placement.Kind
		org          string
		req          string
		want         placement.Reason // "" fits
	}{
		{"fits", "app-1", "deployment", "", `{"cpu":"1","memory":"1g","disk":"1g"}`, ""},
		{"insufficient cpu", "app-1", "deployment", "", `{"cpu":"7","memory":"1g"}`, placement.ReasonInsufficientCPU},
		{"insufficient memory", "app-1", "deployment", "", `{"cpu":"1","memory":"12g"}`, placement.ReasonInsufficientMemory},
		{"disk threshold", "app-1", "deployment", "", `{"cpu":"1","memory":"1g","disk":"50g"}`, placement.ReasonDiskThreshold},
		{"insufficient disk", "app-1", "deployment", "", `{"cpu":"1","memory":"1g","disk":"70g"}`, placement.ReasonInsufficientDisk},
		{"metrics stale", "app-stale", "deployment", "", `{"cpu":"1"}`, placement.ReasonMetricsStale},
		{"metrics missing", "app-missing", "deployment", "", `{"cpu":"1"}`, placement.ReasonMetricsMissing},
		{"wrong role", "build-1", "deployment", "", `{"cpu":"1"}`, placement.ReasonWrongRole},
		{"wrong organization", "app-2", "deployment", "acme", `{"cpu":"1"}`, placement.ReasonWrongOrganization},
		{"build fits", "build-1", "build", "", `{"memory":"1g"}`, ""},
		{"at build capacity", "build-full", "build", "", `{"memory":"1g"}`, placement.ReasonAtBuildCapacity},
		{"build wrong role", "app-1", "build", "", `{"memory":"1g"}`, placement.ReasonWrongRole},
		{"build insufficient memory", "build-1", "build", "", `{"memory":"40g"}`, placement.ReasonInsufficientMemory},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			check := fmt.Sprintf(`{"server":%q,"kind":%q,"requirements":%s`, tc.server, tc.kind, tc.req)
			if tc.org != "" {
				check += fmt.Sprintf(`,"organization":%q`, tc.org)
			}
			var c CheckResponse
			e.json("POST", "/api/v1/placements/check", check+"}", 200, &c)

			var placed bool
			var reasons []placement.Reason
			if tc.kind == placement.KindBuild {
				var p BuildPlacementResponse
				e.json("POST", "/api/v1/builds/placements", fmt.Sprintf(`{"requirements":%s}`, tc.req), 200, &p)
				placed = slices.ContainsFunc(p.Ranking, func(r placement.Ranked) bool { return r.Server == tc.server })
				for _, r := range p.Rejected {
					if r.Server == tc.server {
						reasons = r.Reasons
					}
				}
				if !placed && reasons == nil && tc.want != placement.ReasonWrongRole {
					t.Fatalf("build placement did not consider %s: %+v", tc.server, p)
				}
			} else {
				body := fmt.Sprintf(`{"candidates":[%q],"requirements":%s`, tc.server, tc.req)
				if tc.org != "" {
					body += fmt.Sprintf(`,"organization":%q`, tc.org)
				}
				var p PlacementResponse
				e.json("POST", "/api/v1/placements", body+"}", 200, &p)
				placed = p.Chosen == tc.server
				if len(p.Rejected) == 1 {
					reasons = p.Rejected[0].Reasons
				}
			}
			if tc.want == "" {
				if !c.Fits || !placed {
					t.Errorf("check fits %v (%v), placement placed %v (%v); want both to take it", c.Fits, c.Reasons, placed, reasons)
				}
				return
			}
			if c.Fits || !slices.Contains(c.Reasons, tc.want) {
				t.Errorf("check: fits %v, reasons %v; want %s", c.Fits, c.Reasons, tc.want)
			}
			// A build placement never considers a server that is not a
			// build server: there is nothing to compare but the check.
			if tc.kind == placement.KindBuild && tc.want == placement.ReasonWrongRole {
				return
			}
			if placed || !slices.Equal(c.Reasons, reasons) {
				t.Errorf("check reasons %v, placement placed %v with reasons %v: they disagree", c.Reasons, placed, reasons)
			}
		})
	}
}

// TestOneChargingRule: a request without memory is charged the default
// request (what a running unlimited container costs) in fit, in the
// reservation that holds it, and in quotas alike.
func TestOneChargingRule(t *testing.T) {
	e := newTestEnv(t)
	snap := testFleet()
	s := snap.Servers["app-1"] // 16 GiB, 14.4 usable, peak 4.8, allocated 1 + 0.5 (one unlimited)
	s.Containers.UnlimitedMemory = 0
	e.fleet.snap = snap
	def := policy.Default().Fit.DefaultRequest
	for i := range 12 {
		var p PlacementResponse
		e.json("POST", "/api/v1/placements", fmt.Sprintf(`{"candidates":["app-1"],"requirements":{"cpu":"0.01"},"reserve":true,"idempotency_key":"tiny-%d"}`, i), 200, &p)
		if p.Reservation == nil || p.Reservation.Resources.Memory != def.Memory || p.Reservation.Resources.CPU != 0.01 {
			t.Fatalf("reservation %d holds %+v, want cpu 0.01 and the default memory %s", i, p.Reservation, def.Memory)
		}
	}
	// 12 × 512 MiB = 6 GiB reserved; usable 14.4 GiB − used 4.8 GiB leaves
	// 3.6 GiB: a 4 GiB check no longer fits (it did when memory-less
	// reservations held no memory).
	var c CheckResponse
	e.json("POST", "/api/v1/placements/check", `{"server":"app-1","requirements":{"cpu":"0.1","memory":"4g"}}`, 200, &c)
	if c.Fits || !slices.Contains(c.Reasons, placement.ReasonInsufficientMemory) {
		t.Errorf("4 GiB after 12 memory-less reservations: fits %v %v; want insufficient_memory", c.Fits, c.Reasons)
	}
	if d := c.Dimension(placement.DimensionMemory); d == nil || d.Reserved != 12*float64(def.Memory) {
		t.Errorf("memory reserved %+v, want 12 × %s", d, def.Memory)
	}
}

// TestExactArithmetic: quota admission and fit compare the same way, in
// whole nanocores: 3 + 3.000000001 cores is over a limit of 6, and
// 6.000000001 does not fit where 6 are available.
func TestExactArithmetic(t *testing.T) {
	pol, err := policy.Parse([]byte("quotas:\n  organizations:\n    acme:\n      max_cpu_cores: 6\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, withPolicy(policy.NewStaticStore(pol)), withAdmission(quota.Admission()))
	snap := testFleet()
	s := snap.Servers["app-1"]
	s.Containers = placement.ContainerState{Managed: placement.ManagedUsage{LimitedCPUCores: 3}, LimitedCPUCores: 3}
	s.CPU.PeakUtilisation = 0
	snap.Organizations = placement.OrganizationsOf(snap.Servers)
	e.fleet.snap = snap

	status, body, _ := e.do("POST", "/api/v1/placements", `{"organization":"acme","requirements":{"cpu":"3.000000001","memory":"1g"}}`)
	if status != 403 {
		t.Errorf("3.000000001 cores over 3 used of 6: status %d %s, want 403", status, body)
	}
	e.json("POST", "/api/v1/placements", `{"organization":"acme","requirements":{"cpu":"3","memory":"1g"}}`, 200, nil)

	// Fit: 8 cores × 0.9 usable − 3 allocated − 0 reserved = 4.2 available.
	for _, tc := range []struct {
		cpu  string
		fits bool
	}{{"4.2", true}, {"4.200000001", false}} {
		var c CheckResponse
		e.json("POST", "/api/v1/placements/check", `{"server":"app-1","requirements":{"cpu":"`+tc.cpu+`","memory":"1g"}}`, 200, &c)
		if c.Fits != tc.fits {
			t.Errorf("cpu %s against 4.2 available: fits %v, want %v (%+v)", tc.cpu, c.Fits, tc.fits, c.Dimensions)
		}
	}
}

// TestStaleServerKeepsItsUsage: a server of the organization that stopped
// answering counts with its last-known usage; one whose usage is unknown
// makes the organization non-compliant and refuses its placements with
// quota_usage_unknown, reserving nothing.
func TestStaleServerKeepsItsUsage(t *testing.T) {
	pol, err := policy.Parse([]byte("quotas:\n  organizations:\n    acme:\n      max_cpu_cores: 6\n      max_memory_gb: 100\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, withPolicy(policy.NewStaticStore(pol)), withAdmission(quota.Admission()))
	snap := testFleet()
	for _, name := range []string{"app-1", "build-1"} {
		snap.Servers[name].Containers.Managed = placement.ManagedUsage{}
	}
	stale := snap.Servers["app-stale"]
	stale.Silent, stale.ContainerUsage = true, placement.LastKnown
	stale.LastKnown = []string{"server:managed_container_spec_cpu_cores:sum"}
	stale.Containers.Managed = placement.ManagedUsage{LimitedCPUCores: 3, LimitedMemoryBytes: 3 * gibF}
	snap.Organizations = placement.OrganizationsOf(snap.Servers)
	e.fleet.snap = snap

	var st quota.Status
	e.json("GET", "/api/v1/organizations/acme", "", 200, &st)
	if st.Usage.CPUCores != 3 || st.Usage.MemoryBytes != 3<<30 || !slices.Equal(st.Breakdown.LastKnownServers, []string{"app-stale"}) || !st.Compliant {
		t.Errorf("acme with app-stale silent: usage %+v, last known %v, compliant %v; want its 3 cores and 3 GiB counted",
			st.Usage, st.Breakdown.LastKnownServers, st.Compliant)
	}
	status, body, _ := e.do("POST", "/api/v1/placements", `{"organization":"acme","requirements":{"cpu":"3.5","memory":"1g"}}`)
	if status != 403 {
		t.Errorf("3.5 cores on top of the silent server's 3: status %d %s, want 403", status, body)
	}

	stale.ContainerUsage, stale.Containers.Managed = placement.Unknown, placement.ManagedUsage{}
	snap.Organizations = placement.OrganizationsOf(snap.Servers)
	e.json("GET", "/api/v1/organizations/acme", "", 200, &st)
	if st.Compliant || !slices.Equal(st.Breakdown.UnknownServers, []string{"app-stale"}) {
		t.Errorf("acme with unknown usage: compliant %v, unknown %v; want not compliant, app-stale listed", st.Compliant, st.Breakdown.UnknownServers)
	}
	status, body, _ = e.do("POST", "/api/v1/placements", `{"organization":"acme","requirements":{"cpu":"1","memory":"1g"},"reserve":true}`)
	if apiErr := apiError(t, body); status != 503 || apiErr.Code != CodeQuotaUsageUnknown || apiErr.Field != "organization" {
		t.Errorf("placement with unknown usage: %d %s, want 503 %s", status, body, CodeQuotaUsageUnknown)
	}
	var list struct {
		Reservations []placement.Reservation `json:"reservations"`
	}
	e.json("GET", "/api/v1/reservations", "", 200, &list)
	if len(list.Reservations) != 0 {
		t.Errorf("a refused placement reserved: %+v", list.Reservations)
	}
	var check quota.Check
	e.json("POST", "/api/v1/organizations/acme/deployments/check", `{"requirements":{"cpu":"1","memory":"1g"}}`, 200, &check)
	if check.Allowed || !slices.Equal(check.UnknownServers, []string{"app-stale"}) {
		t.Errorf("deployment check with unknown usage: %+v", check)
	}
}

// TestStaleBuildServerShowsLastKnown: a build server that went silent is
// shown with its last-known load, never as the idlest server.
func TestStaleBuildServerShowsLastKnown(t *testing.T) {
	e := newTestEnv(t)
	snap := buildFleet()
	b := snap.Servers["build-b"]
	b.Silent, b.LastKnown = true, []string{"server:berth_builds_active:sum"}
	b.Containers.BuildsActive = 2
	e.fleet.snap = snap
	var load build.Load
	e.json("GET", "/api/v1/build-servers/build-b", "", 200, &load)
	if load.Freshness != placement.Stale || !load.LastKnown || load.ActiveBuilds != 2 || load.FreeSlots != 0 || load.Score == 0 {
		t.Errorf("silent build server: %+v; want stale, last known, 2 active builds, no free slot", load)
	}
}

// TestInputEdges covers the request edges of issue 12: TTL bounds, bodies
// of body-less endpoints, empty candidates, idempotency over defaults, the
// effective disk threshold and empty optional strings.
func TestInputEdges(t *testing.T) {
	e := newTestEnv(t)
	for _, ttl := range []string{`0.0001`, `"1ms"`, `"9s"`, `0`} {
		status, body, _ := e.do("POST", "/api/v1/placements", `{"requirements":{"cpu":"1"},"reserve":true,"ttl":`+ttl+`}`)
		if apiErr := apiError(t, body); status != 400 || apiErr.Field != "ttl" {
			t.Errorf("ttl %s: %d %s, want 400 naming ttl", ttl, status, body)
		}
	}
	var p PlacementResponse
	e.json("POST", "/api/v1/placements", `{"requirements":{"cpu":"1"},"reserve":true,"ttl":"10s"}`, 200, &p)
	id := p.Reservation.ID

	for _, path := range []string{"/api/v1/reservations/" + id + "/confirm", "/api/v1/reservations/" + id} {
		method := "POST"
		if path == "/api/v1/reservations/"+id {
			method = "DELETE"
		}
		for _, body := range []string{`{{{not json`, `{"force":true}`, `[]`} {
			status, b, _ := e.do(method, path, body)
			if apiErr := apiError(t, b); status != 400 || apiErr.Field == "" {
				t.Errorf("%s %s with body %s: %d %s, want 400 naming the body", method, path, body, status, b)
			}
		}
	}
	var r placement.Reservation
	e.json("GET", "/api/v1/reservations", "", 200, nil)
	e.json("POST", "/api/v1/reservations/"+id+"/confirm", `{}`, 200, &r)
	if r.ConfirmedAt == nil {
		t.Errorf("confirm with {} did not confirm: %+v", r)
	}

	status, body, _ := e.do("POST", "/api/v1/placements", `{"requirements":{"cpu":"1"},"candidates":[]}`)
	if apiErr := apiError(t, body); status != 400 || apiErr.Field != "candidates" {
		t.Errorf("candidates []: %d %s, want 400 naming candidates", status, body)
	}

	// The same key with the default TTL spelled out asks the same thing.
	var first, again PlacementResponse
	e.json("POST", "/api/v1/placements", `{"requirements":{"cpu":"1"},"reserve":true,"idempotency_key":"k1"}`, 200, &first)
	e.json("POST", "/api/v1/placements", `{"requirements":{"cpu":"1","memory":"512m"},"reserve":true,"idempotency_key":"k1","ttl":"10m","strategy":"spread"}`, 200, &again)
	if !again.Replayed || again.Reservation.ID != first.Reservation.ID {
		t.Errorf("same request with defaults spelled out: replayed %v, %s vs %s", again.Replayed, again.Reservation.ID, first.Reservation.ID)
	}
	var b1, b2 BuildPlacementResponse
	e.json("POST", "/api/v1/builds/placements", `{"application_id":"9","reserve":true,"idempotency_key":"b1"}`, 200, &b1)
	e.json("POST", "/api/v1/builds/placements", `{"application_id":"9","reserve":true,"idempotency_key":"b1","ttl":"10m"}`, 200, &b2)
	if !b2.Replayed {
		t.Errorf("build placement with the default TTL spelled out was not replayed: %+v", b2)
	}
	status, body, _ = e.do("POST", "/api/v1/builds/"+b1.Reservation.ID+"/start", `{"ttl":0.001}`)
	if apiErr := apiError(t, body); status != 400 || apiErr.Field != "ttl" {
		t.Errorf("build start with ttl 0.001: %d %s, want 400 naming ttl", status, body)
	}
	status, body, _ = e.do("POST", "/api/v1/builds/"+b1.Reservation.ID+"/finish", `{{{not json`)
	if status != 400 {
		t.Errorf("finish with a broken body: %d %s, want 400", status, body)
	}
	e.json("GET", "/api/v1/reservations", "", 200, nil)

	// Empty optional strings are the same as leaving them out.
	e.json("POST", "/api/v1/placements", `{"requirements":{"cpu":"1"},"strategy":""}`, 200, &p)
	if p.Strategy != placement.StrategySpread {
		t.Errorf(`strategy "" decided with %q, want the policy's spread`, p.Strategy)
	}
	var est build.Estimate
	e.json("POST", "/api/v1/builds/estimate", `{"build_pack":""}`, 200, &est)

	// A server without its own threshold shows the one fit applies.
	snap := testFleet()
	snap.Servers["app-1"].Disk.ThresholdRatio = 0
	e.fleet.snap = snap
	var v ServerView
	e.json("GET", "/api/v1/servers/app-1", "", 200, &v)
	if v.Disk.ThresholdPercent != 80 || v.Disk.ThresholdSource != fit.ThresholdFromPolicy {
		t.Errorf("threshold of a server publishing none: %v%% from %s, want 80%% from policy_default", v.Disk.ThresholdPercent, v.Disk.ThresholdSource)
	}
	e.json("GET", "/api/v1/servers/app-2", "", 200, &v)
	if v.Disk.ThresholdPercent != 80 || v.Disk.ThresholdSource != fit.ThresholdFromServer {
		t.Errorf("threshold of a server publishing 0.8: %v%% from %s", v.Disk.ThresholdPercent, v.Disk.ThresholdSource)
	}
}

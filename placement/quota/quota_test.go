package quota

import (
	"github.com/berth-dev/berth/internal/placementtest"
	"github.com/berth-dev/berth/internal/reservationtest"
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/schedule"

	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

// quotaPolicy parses a policy whose quotas section is quotas (YAML
// mapping of organizations; empty: none).
func quotaPolicy(t *testing.T, quotas string) *policy.Policy {
	t.Helper()
	if quotas == "" {
		quotas = "    {}\n"
	}
	p, err := policy.Parse([]byte("quotas:\n  organizations:\n" + quotas))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// quotaFleet: acme on s1 and s2, globex on s3, s4 without organization.
// acme runs applications 11 and 12 with 2 cores and 3 GiB of declared
// limits, plus one container without a CPU limit and two without a memory
// limit.
func quotaFleet() *placement.Snapshot {
	disk := func(size, avail float64) func(*placement.ServerState) {
		return func(s *placement.ServerState) { s.Disk.SizeBytes, s.Disk.AvailableBytes = size, avail }
	}
	snap := placementtest.Fleet(
		placementtest.Server("s1", func(s *placement.ServerState) { s.Organization = "acme" }, disk(100*placementtest.GiB, 60*placementtest.GiB)),
		placementtest.Server("s2", func(s *placement.ServerState) { s.Organization = "acme" }, disk(50*placementtest.GiB, 40*placementtest.GiB)),
		placementtest.Server("s3", func(s *placement.ServerState) { s.Organization = "globex" }),
		placementtest.Server("s4"),
	)
	snap.Organizations = map[string]*placement.OrganizationUsage{
		"acme": {Name: "acme", Servers: 2, Applications: 2, LimitedCPUCores: 2, LimitedMemoryBytes: 3 * placementtest.GiB,
			UnlimitedCPU: 1, UnlimitedMemory: 2, ApplicationIDs: []string{"11", "12"}},
		"globex": {Name: "globex", Servers: 1},
	}
	return snap
}

func ptr[T any](v T) *T { return &v }

func TestQuotaStatus(t *testing.T) {
	dep := func(org, app string, cpu placement.Cores, mem placement.Bytes) placement.Reservation {
		return placement.Reservation{Kind: placement.KindDeployment, Server: "s1", Organization: org, ApplicationID: app, Resources: placement.Resources{CPU: cpu, Memory: mem}, State: placement.StateActive}
	}
	for _, c := range []struct {
		name       string
		quotas     string
		org        string
		open       []placement.Reservation
		want       Usage
		limits     Limits
		reserved   Reserved
		violations []string
	}{{
		// Unlimited containers are charged the default request: 2 + 1 ×
		// 0.5 cores, 3 GiB + 2 × 512 MiB.
		name:     "metrics only, unlimited containers at defaults",
		org:      "acme",
		want:     Usage{Servers: 2, Applications: 2, CPUCores: 2.5, MemoryBytes: 4 * placementtest.GiB},
		reserved: Reserved{ApplicationIDs: []string{}},
	}, {
		name: "reservations counted: new application, preview of a running one, default for 0",
		org:  "acme",
		open: []placement.Reservation{
			dep("acme", "13", 1, 1*placementtest.GiB),
			dep("acme", "13", 1, 1*placementtest.GiB), // a second deployment of the new application
			dep("acme", "11", 0.5, 0),                 // preview of running 11: no new application; memory 0 → 512 MiB
			dep("acme", "", 0, 256*placementtest.MiB), // no application id: no application; cpu 0 → 0.5
			dep("globex", "99", 8, 8*placementtest.GiB),
			{Kind: placement.KindBuild, Server: "b", Organization: "acme", ApplicationID: "14", Resources: placement.Resources{CPU: 2, Memory: 2 * placementtest.GiB}, State: placement.StateQueued},
		},
		want: Usage{Servers: 2, Applications: 3, CPUCores: 2.5 + 1 + 1 + 0.5 + 0.5, MemoryBytes: 4*placementtest.GiB + 2*placementtest.GiB + 512*placementtest.MiB + 256*placementtest.MiB},
		reserved: Reserved{Reservations: 4, CPUCores: 3, MemoryBytes: 2*placementtest.GiB + 768*placementtest.MiB,
			ApplicationIDs: []string{"13"}},
	}, {
		name:     "absent limits are unlimited, 0 allows none",
		quotas:   "    acme: {max_servers: 0, max_cpu_cores: 0}\n",
		org:      "acme",
		want:     Usage{Servers: 2, Applications: 2, CPUCores: 2.5, MemoryBytes: 4 * placementtest.GiB},
		limits:   Limits{Servers: ptr(0), CPUCores: ptr(0.0)},
		reserved: Reserved{ApplicationIDs: []string{}},
		violations: []string{
			"exceeded quota: acme, used: servers=2, limited: servers=0",
			"exceeded quota: acme, used: cpu=2.5, limited: cpu=0",
		},
	}, {
		name:     "at the limit is compliant",
		quotas:   "    acme: {max_servers: 2, max_applications: 2, max_cpu_cores: 2.5, max_memory_gb: 4}\n",
		org:      "acme",
		want:     Usage{Servers: 2, Applications: 2, CPUCores: 2.5, MemoryBytes: 4 * placementtest.GiB},
		limits:   Limits{Servers: ptr(2), Applications: ptr(2), CPUCores: ptr(2.5), MemoryBytes: ptr[int64](4 * placementtest.GiB)},
		reserved: Reserved{ApplicationIDs: []string{}},
	}, {
		name:     "over in memory, fractional GiB limit",
		quotas:   "    acme: {max_memory_gb: 3.5}\n",
		org:      "acme",
		want:     Usage{Servers: 2, Applications: 2, CPUCores: 2.5, MemoryBytes: 4 * placementtest.GiB},
		limits:   Limits{MemoryBytes: ptr[int64](3584 * placementtest.MiB)},
		reserved: Reserved{ApplicationIDs: []string{}},
		violations: []string{
			"exceeded quota: acme, used: memory=4Gi, limited: memory=3584Mi",
		},
	}, {
		name:     "a huge memory limit does not wrap around",
		quotas:   "    acme: {max_memory_gb: 1e30}\n",
		org:      "acme",
		want:     Usage{Servers: 2, Applications: 2, CPUCores: 2.5, MemoryBytes: 4 * placementtest.GiB},
		limits:   Limits{MemoryBytes: ptr[int64](math.MaxInt64)},
		reserved: Reserved{ApplicationIDs: []string{}},
	}, {
		name:     "organization with a quota and no servers yet",
		quotas:   "    newco: {max_applications: 0}\n",
		org:      "newco",
		limits:   Limits{Applications: ptr(0)},
		reserved: Reserved{ApplicationIDs: []string{}},
	}} {
		t.Run(c.name, func(t *testing.T) {
			p := quotaPolicy(t, c.quotas)
			st := StatusOf(p, quotaFleet(), c.org, c.open)
			if st.Usage != c.want {
				t.Errorf("usage %+v, want %+v", st.Usage, c.want)
			}
			if !reflect.DeepEqual(st.Limits, c.limits) {
				t.Errorf("limits %s, want %s", jsonString(t, st.Limits), jsonString(t, c.limits))
			}
			if !reflect.DeepEqual(st.Breakdown.Reserved, c.reserved) {
				t.Errorf("reserved %+v, want %+v", st.Breakdown.Reserved, c.reserved)
			}
			var msgs []string
			for _, v := range st.Violations {
				msgs = append(msgs, v.Message)
			}
			if !slices.Equal(msgs, c.violations) {
				t.Errorf("violations %q, want %q", msgs, c.violations)
			}
			if st.Compliant != (len(c.violations) == 0) {
				t.Errorf("compliant %v with violations %q", st.Compliant, msgs)
			}
		})
	}
}

func TestQuotaStatusBreakdown(t *testing.T) {
	st := StatusOf(policy.Default(), quotaFleet(), "acme", nil)
	b := st.Breakdown
	if !slices.Equal(b.Servers, []string{"s1", "s2"}) || !slices.Equal(b.ApplicationIDs, []string{"11", "12"}) {
		t.Errorf("servers %v, applications %v", b.Servers, b.ApplicationIDs)
	}
	want := Containers{LimitedCPUCores: 2, LimitedMemoryBytes: 3 * placementtest.GiB, UnlimitedCPU: 1, UnlimitedMemory: 2,
		DefaultCPUCores: 0.5, DefaultMemoryBytes: 1 * placementtest.GiB}
	if b.Containers != want {
		t.Errorf("containers %+v, want %+v", b.Containers, want)
	}
	// Disk used on acme's servers: 40 GiB on s1, 10 GiB on s2.
	if b.Disk != (Disk{UsedBytes: 50 * placementtest.GiB, SizeBytes: 150 * placementtest.GiB}) {
		t.Errorf("disk %+v", b.Disk)
	}
}

func TestQuotaOrganizations(t *testing.T) {
	p := quotaPolicy(t, "    planned: {max_servers: 1}\n")
	snap := quotaFleet()
	snap.Servers["s5"] = placementtest.Server("s5", func(s *placement.ServerState) { s.Organization = "rules-lag" })
	open := []placement.Reservation{
		{Kind: placement.KindDeployment, Organization: "reserving"},
		{Kind: placement.KindBuild, Organization: "builder"},
	}
	got := Organizations(p, snap, open)
	want := []string{"acme", "globex", "planned", "reserving", "rules-lag"}
	if !slices.Equal(got, want) {
		t.Errorf("organizations %v, want %v", got, want)
	}
	if Knows(p, snap, open, "nope") || Knows(p, snap, open, "") || !Knows(p, snap, open, "planned") {
		t.Error("KnowsOrganization disagrees with QuotaOrganizations")
	}
}

func TestCheckQuota(t *testing.T) {
	// acme's usage: 2 servers, 2 applications, 2.5 cores, 4 GiB.
	for _, c := range []struct {
		name     string
		quotas   string
		req      placement.Resources
		newApp   bool
		messages []string
		request  Usage
	}{{
		name:     "memory over, Kubernetes' words",
		quotas:   "    acme: {max_memory_gb: 5}\n",
		req:      placement.Resources{CPU: 1, Memory: 2 * placementtest.GiB},
		messages: []string{"exceeded quota: acme, requested: memory=2Gi, used: memory=4Gi, limited: memory=5Gi"},
		request:  Usage{CPUCores: 1, MemoryBytes: 2 * placementtest.GiB},
	}, {
		name:    "exactly filling the quota is allowed",
		quotas:  "    acme: {max_memory_gb: 6, max_cpu_cores: 3.5, max_applications: 3}\n",
		req:     placement.Resources{CPU: 1, Memory: 2 * placementtest.GiB},
		newApp:  true,
		request: Usage{Applications: 1, CPUCores: 1, MemoryBytes: 2 * placementtest.GiB},
	}, {
		name:     "cpu over, in cores",
		quotas:   "    acme: {max_cpu_cores: 4}\n",
		req:      placement.Resources{CPU: 2, Memory: 1 * placementtest.GiB},
		messages: []string{"exceeded quota: acme, requested: cpu=2, used: cpu=2.5, limited: cpu=4"},
		request:  Usage{CPUCores: 2, MemoryBytes: 1 * placementtest.GiB},
	}, {
		name:     "new application over",
		quotas:   "    acme: {max_applications: 2}\n",
		req:      placement.Resources{CPU: 0.25, Memory: 128 * placementtest.MiB},
		newApp:   true,
		messages: []string{"exceeded quota: acme, requested: applications=1, used: applications=2, limited: applications=2"},
		request:  Usage{Applications: 1, CPUCores: 0.25, MemoryBytes: 128 * placementtest.MiB},
	}, {
		name:    "existing application (or preview) is not refused by an application limit it already meets",
		quotas:  "    acme: {max_applications: 1}\n",
		req:     placement.Resources{CPU: 0.25, Memory: 128 * placementtest.MiB},
		request: Usage{CPUCores: 0.25, MemoryBytes: 128 * placementtest.MiB},
	}, {
		name:    "absent limits: unlimited",
		quotas:  "    acme: {max_servers: 1}\n",
		req:     placement.Resources{CPU: 1000, Memory: 1 << 50},
		newApp:  true,
		request: Usage{Applications: 1, CPUCores: 1000, MemoryBytes: 1 << 50},
	}, {
		name:   "zero allows none, and 0 requested is charged the default request",
		quotas: "    acme: {max_cpu_cores: 0, max_memory_gb: 0, max_applications: 0}\n",
		req:    placement.Resources{},
		newApp: true,
		messages: []string{
			"exceeded quota: acme, requested: applications=1, used: applications=2, limited: applications=0",
			"exceeded quota: acme, requested: cpu=0.5, used: cpu=2.5, limited: cpu=0",
			"exceeded quota: acme, requested: memory=512Mi, used: memory=4Gi, limited: memory=0",
		},
		request: Usage{Applications: 1, CPUCores: 0.5, MemoryBytes: 512 * placementtest.MiB},
	}, {
		name:     "odd byte counts are written in bytes",
		quotas:   "    acme: {max_memory_gb: 4}\n",
		req:      placement.Resources{CPU: 0.1, Memory: 1000},
		messages: []string{"exceeded quota: acme, requested: memory=1000, used: memory=4Gi, limited: memory=4Gi"},
		request:  Usage{CPUCores: 0.1, MemoryBytes: 1000},
	}} {
		t.Run(c.name, func(t *testing.T) {
			p := quotaPolicy(t, c.quotas)
			st := StatusOf(p, quotaFleet(), "acme", nil)
			got := CheckDeployment(p, &st, c.req, c.newApp)
			if got.Allowed != (len(c.messages) == 0) {
				t.Errorf("allowed %v, messages %q", got.Allowed, got.Messages)
			}
			if !slices.Equal(got.Messages, c.messages) && (len(got.Messages) > 0 || len(c.messages) > 0) {
				t.Errorf("messages\n got %q\nwant %q", got.Messages, c.messages)
			}
			if got.Requested != c.request {
				t.Errorf("requested %+v, want %+v", got.Requested, c.request)
			}
			if got.Projected != st.Usage.Add(c.request) {
				t.Errorf("projected %+v, want usage + requested", got.Projected)
			}
			if len(got.Exceeded) != len(got.Messages) {
				t.Errorf("%d exceeded, %d messages", len(got.Exceeded), len(got.Messages))
			}
		})
	}
}

func TestQuotaFormatCPUDrift(t *testing.T) {
	// 0.1 + 0.2 is 0.30000000000000004 in floats; messages say 0.3.
	if got := CPUCores.format(0.1 + 0.2); got != "0.3" {
		t.Errorf("format %q", got)
	}
	if over(CPUCores, 0.1+0.2, 0.3) {
		t.Error("float drift counted as over the limit")
	}
}

// quotaRoom5 is a policy giving acme room for exactly 5 more deployments of
// 1 GiB (usage 4 GiB, limit 9 GiB) on a fleet with room for far more.
func quotaRoom5(t *testing.T) (*schedule.Placer, *placement.Snapshot) {
	t.Helper()
	p := quotaPolicy(t, "    acme: {max_memory_gb: 9}\n")
	snap := quotaFleet()
	for _, s := range snap.Servers {
		s.CPU.Cores, s.Memory.TotalBytes, s.Memory.AvailableBytes = 64, 256*placementtest.GiB, 256*placementtest.GiB
	}
	return schedule.NewPlacer(policy.NewStaticStore(p), reservationtest.Open(t, t.TempDir(), placementtest.NewClock()), Admission()), snap
}

func TestQuotaAdmissionConcurrent(t *testing.T) {
	pl, snap := quotaRoom5(t)
	req := placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{CPU: 0.1, Memory: 1 * placementtest.GiB}, Reserve: true, Organization: "acme", ApplicationID: "11"}
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		placed, refused int
		lastErr         error
	)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := pl.Place(snap, req)
			mu.Lock()
			defer mu.Unlock()
			var qe *ExceededError
			switch {
			case errors.As(err, &qe):
				refused++
				lastErr = err
			case err != nil:
				t.Error(err)
			case d.Reservation != nil:
				placed++
			}
		}()
	}
	wg.Wait()
	if placed != 5 || refused != 15 {
		t.Fatalf("placed %d, refused %d; want 5 and 15", placed, refused)
	}
	want := "exceeded quota: acme, requested: memory=1Gi, used: memory=9Gi, limited: memory=9Gi"
	if lastErr.Error() != want {
		t.Errorf("error %q, want %q", lastErr, want)
	}
	var exceeded *ExceededError
	if !errors.As(lastErr, &exceeded) || len(exceeded.Exceeded) != 1 || exceeded.Exceeded[0].Resource != MemoryBytes {
		t.Errorf("error %T is not a typed quota refusal naming memory", lastErr)
	}
}

func TestQuotaAdmissionScope(t *testing.T) {
	pl, snap := quotaRoom5(t)
	big := placement.Resources{CPU: 0.1, Memory: 6 * placementtest.GiB}
	for _, c := range []struct {
		name    string
		req     placement.Request
		refused bool
	}{
		{"over quota", placement.Request{Kind: placement.KindDeployment, Requirements: big, Organization: "acme"}, true},
		{"over quota, reserving", placement.Request{Kind: placement.KindDeployment, Requirements: big, Organization: "acme", Reserve: true}, true},
		{"no organization", placement.Request{Kind: placement.KindDeployment, Requirements: big}, false},
		{"organization without quota", placement.Request{Kind: placement.KindDeployment, Requirements: big, Organization: "globex"}, false},
		{"fits", placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{CPU: 1, Memory: 5 * placementtest.GiB}, Organization: "acme"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := pl.Place(snap, c.req)
			var qe *ExceededError
			if c.refused != errors.As(err, &qe) {
				t.Fatalf("refused %v, want %v (err %v)", err != nil, c.refused, err)
			}
			if !c.refused && (err != nil || d.Chosen == "") {
				t.Errorf("not placed: %v %+v", err, d)
			}
			if c.refused && (qe.Organization != "acme" || !strings.HasPrefix(qe.Error(), "exceeded quota: acme, requested: memory=6Gi")) {
				t.Errorf("refusal %q", qe)
			}
		})
	}
	if n := len(pl.Store().List()); n != 0 {
		t.Errorf("%d reservations written by refused placements", n)
	}
}

func TestQuotaAdmissionNewApplication(t *testing.T) {
	p := quotaPolicy(t, "    acme: {max_applications: 3}\n")
	pl := schedule.NewPlacer(policy.NewStaticStore(p), reservationtest.Open(t, t.TempDir(), placementtest.NewClock()), Admission())
	snap := quotaFleet()
	req := func(app string) placement.Request {
		return placement.Request{Kind: placement.KindDeployment, Requirements: placement.Resources{CPU: 0.1, Memory: 64 * placementtest.MiB}, Organization: "acme", ApplicationID: app, Reserve: true}
	}
	// Running 11 and 12; 13 is the third application, reserved twice;
	// 14 would be the fourth.
	for _, app := range []string{"11", "12", "13", "13", "11"} {
		if _, err := pl.Place(snap, req(app)); err != nil {
			t.Fatalf("application %s: %v", app, err)
		}
	}
	_, err := pl.Place(snap, req("14"))
	want := "exceeded quota: acme, requested: applications=1, used: applications=3, limited: applications=3"
	if err == nil || err.Error() != want {
		t.Errorf("fourth application: %v, want %q", err, want)
	}
}

func TestExcessServers(t *testing.T) {
	snap := quotaFleet()
	for _, n := range []string{"a", "d", "c"} {
		snap.Servers[n] = placementtest.Server(n, func(s *placement.ServerState) { s.Organization = "acme" })
	}
	// acme: a, c, d, s1, s2.
	for _, c := range []struct {
		quotas       string
		keep, excess []string
	}{
		{"", []string{"a", "c", "d", "s1", "s2"}, []string{}},
		{"    acme: {max_servers: 5}\n", []string{"a", "c", "d", "s1", "s2"}, []string{}},
		{"    acme: {max_servers: 3}\n", []string{"a", "c", "d"}, []string{"s1", "s2"}},
		{"    acme: {max_servers: 0}\n", []string{}, []string{"a", "c", "d", "s1", "s2"}},
	} {
		got := ExcessOf(quotaPolicy(t, c.quotas), snap, "acme")
		if !slices.Equal(got.Keep, c.keep) || !slices.Equal(got.Excess, c.excess) || got.Servers != 5 {
			t.Errorf("quota %q: keep %v excess %v (%d servers), want %v and %v", c.quotas, got.Keep, got.Excess, got.Servers, c.keep, c.excess)
		}
		// Same input, same answer.
		if again := ExcessOf(quotaPolicy(t, c.quotas), snap, "acme"); !reflect.DeepEqual(again, got) {
			t.Errorf("not deterministic: %+v then %+v", got, again)
		}
	}
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

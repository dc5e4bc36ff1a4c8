package placement

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

// quotaPolicy parses a policy whose quotas section is quotas (YAML
// mapping of organizations; empty: none).
func quotaPolicy(t *testing.T, quotas string) *Policy {
	t.Helper()
	if quotas == "" {
		quotas = "    {}\n"
	}
	p, err := ParsePolicy([]byte("quotas:\n  organizations:\n" + quotas))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// quotaFleet: acme on s1 and s2, globex on s3, s4 without organization.
// acme runs applications 11 and 12 with 2 cores and 3 GiB of declared
// limits, plus one container without a CPU limit and two without a memory
// limit.
func quotaFleet() *Snapshot {
	disk := func(size, avail float64) func(*ServerState) {
		return func(s *ServerState) { s.Disk.SizeBytes, s.Disk.AvailableBytes = size, avail }
	}
	snap := fleet(
		server("s1", func(s *ServerState) { s.Organization = "acme" }, disk(100*gib, 60*gib)),
		server("s2", func(s *ServerState) { s.Organization = "acme" }, disk(50*gib, 40*gib)),
		server("s3", func(s *ServerState) { s.Organization = "globex" }),
		server("s4"),
	)
	snap.Organizations = map[string]*OrganizationUsage{
		"acme": {Name: "acme", Servers: 2, Applications: 2, LimitedCPUCores: 2, LimitedMemoryBytes: 3 * gib,
			UnlimitedCPU: 1, UnlimitedMemory: 2, ApplicationIDs: []string{"11", "12"}},
		"globex": {Name: "globex", Servers: 1},
	}
	return snap
}

func ptr[T any](v T) *T { return &v }

func TestQuotaStatus(t *testing.T) {
	dep := func(org, app string, cpu Cores, mem Bytes) Reservation {
		return Reservation{Kind: KindDeployment, Server: "s1", Organization: org, ApplicationID: app, Resources: Resources{CPU: cpu, Memory: mem}, State: StateActive}
	}
	for _, c := range []struct {
		name       string
		quotas     string
		org        string
		open       []Reservation
		want       QuotaUsage
		limits     QuotaLimitValues
		reserved   QuotaReserved
		violations []string
	}{{
		// Unlimited containers are charged the default request: 2 + 1 ×
		// 0.5 cores, 3 GiB + 2 × 512 MiB.
		name:     "metrics only, unlimited containers at defaults",
		org:      "acme",
		want:     QuotaUsage{Servers: 2, Applications: 2, CPUCores: 2.5, MemoryBytes: 4 * gib},
		reserved: QuotaReserved{ApplicationIDs: []string{}},
	}, {
		name: "reservations counted: new application, preview of a running one, default for 0",
		org:  "acme",
		open: []Reservation{
			dep("acme", "13", 1, 1*gib),
			dep("acme", "13", 1, 1*gib), // a second deployment of the new application
			dep("acme", "11", 0.5, 0),   // preview of running 11: no new application; memory 0 → 512 MiB
			dep("acme", "", 0, 256*mib), // no application id: no application; cpu 0 → 0.5
			dep("globex", "99", 8, 8*gib),
			{Kind: KindBuild, Server: "b", Organization: "acme", ApplicationID: "14", Resources: Resources{CPU: 2, Memory: 2 * gib}, State: StateQueued},
		},
		want: QuotaUsage{Servers: 2, Applications: 3, CPUCores: 2.5 + 1 + 1 + 0.5 + 0.5, MemoryBytes: 4*gib + 2*gib + 512*mib + 256*mib},
		reserved: QuotaReserved{Reservations: 4, CPUCores: 3, MemoryBytes: 2*gib + 768*mib,
			ApplicationIDs: []string{"13"}},
	}, {
		name:     "absent limits are unlimited, 0 allows none",
		quotas:   "    acme: {max_servers: 0, max_cpu_cores: 0}\n",
		org:      "acme",
		want:     QuotaUsage{Servers: 2, Applications: 2, CPUCores: 2.5, MemoryBytes: 4 * gib},
		limits:   QuotaLimitValues{Servers: ptr(0), CPUCores: ptr(0.0)},
		reserved: QuotaReserved{ApplicationIDs: []string{}},
		violations: []string{
			"exceeded quota: acme, used: servers=2, limited: servers=0",
			"exceeded quota: acme, used: cpu=2.5, limited: cpu=0",
		},
	}, {
		name:     "at the limit is compliant",
		quotas:   "    acme: {max_servers: 2, max_applications: 2, max_cpu_cores: 2.5, max_memory_gb: 4}\n",
		org:      "acme",
		want:     QuotaUsage{Servers: 2, Applications: 2, CPUCores: 2.5, MemoryBytes: 4 * gib},
		limits:   QuotaLimitValues{Servers: ptr(2), Applications: ptr(2), CPUCores: ptr(2.5), MemoryBytes: ptr[int64](4 * gib)},
		reserved: QuotaReserved{ApplicationIDs: []string{}},
	}, {
		name:     "over in memory, fractional GiB limit",
		quotas:   "    acme: {max_memory_gb: 3.5}\n",
		org:      "acme",
		want:     QuotaUsage{Servers: 2, Applications: 2, CPUCores: 2.5, MemoryBytes: 4 * gib},
		limits:   QuotaLimitValues{MemoryBytes: ptr[int64](3584 * mib)},
		reserved: QuotaReserved{ApplicationIDs: []string{}},
		violations: []string{
			"exceeded quota: acme, used: memory=4Gi, limited: memory=3584Mi",
		},
	}, {
		name:     "a huge memory limit does not wrap around",
		quotas:   "    acme: {max_memory_gb: 1e30}\n",
		org:      "acme",
		want:     QuotaUsage{Servers: 2, Applications: 2, CPUCores: 2.5, MemoryBytes: 4 * gib},
		limits:   QuotaLimitValues{MemoryBytes: ptr[int64](math.MaxInt64)},
		reserved: QuotaReserved{ApplicationIDs: []string{}},
	}, {
		name:     "organization with a quota and no servers yet",
		quotas:   "    newco: {max_applications: 0}\n",
		org:      "newco",
		limits:   QuotaLimitValues{Applications: ptr(0)},
		reserved: QuotaReserved{ApplicationIDs: []string{}},
	}} {
		t.Run(c.name, func(t *testing.T) {
			p := quotaPolicy(t, c.quotas)
			st := p.QuotaStatus(quotaFleet(), c.org, c.open)
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
	st := DefaultPolicy().QuotaStatus(quotaFleet(), "acme", nil)
	b := st.Breakdown
	if !slices.Equal(b.Servers, []string{"s1", "s2"}) || !slices.Equal(b.ApplicationIDs, []string{"11", "12"}) {
		t.Errorf("servers %v, applications %v", b.Servers, b.ApplicationIDs)
	}
	want := QuotaContainers{LimitedCPUCores: 2, LimitedMemoryBytes: 3 * gib, UnlimitedCPU: 1, UnlimitedMemory: 2,
		DefaultCPUCores: 0.5, DefaultMemoryBytes: 1 * gib}
	if b.Containers != want {
		t.Errorf("containers %+v, want %+v", b.Containers, want)
	}
	// Disk used on acme's servers: 40 GiB on s1, 10 GiB on s2.
	if b.Disk != (QuotaDisk{UsedBytes: 50 * gib, SizeBytes: 150 * gib}) {
		t.Errorf("disk %+v", b.Disk)
	}
}

func TestQuotaOrganizations(t *testing.T) {
	p := quotaPolicy(t, "    planned: {max_servers: 1}\n")
	snap := quotaFleet()
	snap.Servers["s5"] = server("s5", func(s *ServerState) { s.Organization = "rules-lag" })
	open := []Reservation{
		{Kind: KindDeployment, Organization: "reserving"},
		{Kind: KindBuild, Organization: "builder"},
	}
	got := p.QuotaOrganizations(snap, open)
	want := []string{"acme", "globex", "planned", "reserving", "rules-lag"}
	if !slices.Equal(got, want) {
		t.Errorf("organizations %v, want %v", got, want)
	}
	if p.KnowsOrganization(snap, open, "nope") || p.KnowsOrganization(snap, open, "") || !p.KnowsOrganization(snap, open, "planned") {
		t.Error("KnowsOrganization disagrees with QuotaOrganizations")
	}
}

func TestCheckQuota(t *testing.T) {
	// acme's usage: 2 servers, 2 applications, 2.5 cores, 4 GiB.
	for _, c := range []struct {
		name     string
		quotas   string
		req      Resources
		newApp   bool
		messages []string
		request  QuotaUsage
	}{{
		name:     "memory over, Kubernetes' words",
		quotas:   "    acme: {max_memory_gb: 5}\n",
		req:      Resources{CPU: 1, Memory: 2 * gib},
		messages: []string{"exceeded quota: acme, requested: memory=2Gi, used: memory=4Gi, limited: memory=5Gi"},
		request:  QuotaUsage{CPUCores: 1, MemoryBytes: 2 * gib},
	}, {
		name:    "exactly filling the quota is allowed",
		quotas:  "    acme: {max_memory_gb: 6, max_cpu_cores: 3.5, max_applications: 3}\n",
		req:     Resources{CPU: 1, Memory: 2 * gib},
		newApp:  true,
		request: QuotaUsage{Applications: 1, CPUCores: 1, MemoryBytes: 2 * gib},
	}, {
		name:     "cpu over, in cores",
		quotas:   "    acme: {max_cpu_cores: 4}\n",
		req:      Resources{CPU: 2, Memory: 1 * gib},
		messages: []string{"exceeded quota: acme, requested: cpu=2, used: cpu=2.5, limited: cpu=4"},
		request:  QuotaUsage{CPUCores: 2, MemoryBytes: 1 * gib},
	}, {
		name:     "new application over",
		quotas:   "    acme: {max_applications: 2}\n",
		req:      Resources{CPU: 0.25, Memory: 128 * mib},
		newApp:   true,
		messages: []string{"exceeded quota: acme, requested: applications=1, used: applications=2, limited: applications=2"},
		request:  QuotaUsage{Applications: 1, CPUCores: 0.25, MemoryBytes: 128 * mib},
	}, {
		name:    "existing application (or preview) is not refused by an application limit it already meets",
		quotas:  "    acme: {max_applications: 1}\n",
		req:     Resources{CPU: 0.25, Memory: 128 * mib},
		request: QuotaUsage{CPUCores: 0.25, MemoryBytes: 128 * mib},
	}, {
		name:    "absent limits: unlimited",
		quotas:  "    acme: {max_servers: 1}\n",
		req:     Resources{CPU: 1000, Memory: 1 << 50},
		newApp:  true,
		request: QuotaUsage{Applications: 1, CPUCores: 1000, MemoryBytes: 1 << 50},
	}, {
		name:   "zero allows none, and 0 requested is charged the default request",
		quotas: "    acme: {max_cpu_cores: 0, max_memory_gb: 0, max_applications: 0}\n",
		req:    Resources{},
		newApp: true,
		messages: []string{
			"exceeded quota: acme, requested: applications=1, used: applications=2, limited: applications=0",
			"exceeded quota: acme, requested: cpu=0.5, used: cpu=2.5, limited: cpu=0",
			"exceeded quota: acme, requested: memory=512Mi, used: memory=4Gi, limited: memory=0",
		},
		request: QuotaUsage{Applications: 1, CPUCores: 0.5, MemoryBytes: 512 * mib},
	}, {
		name:     "odd byte counts are written in bytes",
		quotas:   "    acme: {max_memory_gb: 4}\n",
		req:      Resources{CPU: 0.1, Memory: 1000},
		messages: []string{"exceeded quota: acme, requested: memory=1000, used: memory=4Gi, limited: memory=4Gi"},
		request:  QuotaUsage{CPUCores: 0.1, MemoryBytes: 1000},
	}} {
		t.Run(c.name, func(t *testing.T) {
			p := quotaPolicy(t, c.quotas)
			st := p.QuotaStatus(quotaFleet(), "acme", nil)
			got := p.CheckQuota(&st, c.req, c.newApp)
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
	if got := QuotaCPUCores.format(0.1 + 0.2); got != "0.3" {
		t.Errorf("format %q", got)
	}
	if over(QuotaCPUCores, 0.1+0.2, 0.3) {
		t.Error("float drift counted as over the limit")
	}
}

// quotaRoom5 is a policy giving acme room for exactly 5 more deployments of
// 1 GiB (usage 4 GiB, limit 9 GiB) on a fleet with room for far more.
func quotaRoom5(t *testing.T) (*Placer, *Snapshot) {
	t.Helper()
	p := quotaPolicy(t, "    acme: {max_memory_gb: 9}\n")
	snap := quotaFleet()
	for _, s := range snap.Servers {
		s.CPU.Cores, s.Memory.TotalBytes, s.Memory.AvailableBytes = 64, 256*gib, 256*gib
	}
	return NewPlacer(NewStaticPolicyStore(p), openStore(t, t.TempDir(), newClock()), QuotaAdmission()), snap
}

func TestQuotaAdmissionConcurrent(t *testing.T) {
	pl, snap := quotaRoom5(t)
	req := Request{Kind: KindDeployment, Requirements: Resources{CPU: 0.1, Memory: 1 * gib}, Reserve: true, Organization: "acme", ApplicationID: "11"}
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
			var qe *QuotaExceededError
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
	var status interface{ HTTPStatus() int }
	if !errors.As(lastErr, &status) || status.HTTPStatus() != http.StatusForbidden {
		t.Errorf("error %T does not say 403", lastErr)
	}
}

func TestQuotaAdmissionScope(t *testing.T) {
	pl, snap := quotaRoom5(t)
	big := Resources{CPU: 0.1, Memory: 6 * gib}
	for _, c := range []struct {
		name    string
		req     Request
		refused bool
	}{
		{"over quota", Request{Kind: KindDeployment, Requirements: big, Organization: "acme"}, true},
		{"over quota, reserving", Request{Kind: KindDeployment, Requirements: big, Organization: "acme", Reserve: true}, true},
		{"no organization", Request{Kind: KindDeployment, Requirements: big}, false},
		{"organization without quota", Request{Kind: KindDeployment, Requirements: big, Organization: "globex"}, false},
		{"fits", Request{Kind: KindDeployment, Requirements: Resources{CPU: 1, Memory: 5 * gib}, Organization: "acme"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := pl.Place(snap, c.req)
			var qe *QuotaExceededError
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
	pl := NewPlacer(NewStaticPolicyStore(p), openStore(t, t.TempDir(), newClock()), QuotaAdmission())
	snap := quotaFleet()
	req := func(app string) Request {
		return Request{Kind: KindDeployment, Requirements: Resources{CPU: 0.1, Memory: 64 * mib}, Organization: "acme", ApplicationID: app, Reserve: true}
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
		snap.Servers[n] = server(n, func(s *ServerState) { s.Organization = "acme" })
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
		got := quotaPolicy(t, c.quotas).ExcessServers(snap, "acme")
		if !slices.Equal(got.Keep, c.keep) || !slices.Equal(got.Excess, c.excess) || got.Servers != 5 {
			t.Errorf("quota %q: keep %v excess %v (%d servers), want %v and %v", c.quotas, got.Keep, got.Excess, got.Servers, c.keep, c.excess)
		}
		// Same input, same answer.
		if again := quotaPolicy(t, c.quotas).ExcessServers(snap, "acme"); !reflect.DeepEqual(again, got) {
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

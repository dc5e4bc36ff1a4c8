package build

import (
	"github.com/berth-dev/berth/internal/placementtest"
	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/policy"

	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func fptr(v float64) *float64 { return &v }

func TestProfileEstimate(t *testing.T) {
	p := policy.Default()
	for _, tc := range []struct {
		name string
		req  EstimateRequest
		// want
		profile     string
		cpu         float64
		memory      placement.Bytes
		disk        placement.Bytes
		duration    time.Duration
		adjustments []string
	}{
		// Each of the seed's profiles.
		{"simple_static", EstimateRequest{Profile: "simple_static"}, "simple_static", 30, 512 * placementtest.MiB, 1 * placementtest.GiB, 2 * time.Minute, nil},
		{"node_application", EstimateRequest{Profile: "node_application"}, "node_application", 60, 2 * placementtest.GiB, 4 * placementtest.GiB, 5 * time.Minute, nil},
		{"docker_build", EstimateRequest{Profile: "docker_build"}, "docker_build", 80, 4 * placementtest.GiB, 8 * placementtest.GiB, 10 * time.Minute, nil},
		{"large_monorepo", EstimateRequest{Profile: "large_monorepo"}, "large_monorepo", 90, 8 * placementtest.GiB, 16 * placementtest.GiB, 20 * time.Minute, nil},
		{"default profile", EstimateRequest{}, "node_application", 60, 2 * placementtest.GiB, 4 * placementtest.GiB, 5 * time.Minute, nil},
		// Each adjustment.
		{"dockerfile × 1.5 memory", EstimateRequest{Profile: "docker_build", BuildPack: "dockerfile"}, "docker_build", 80, 6 * placementtest.GiB, 8 * placementtest.GiB, 10 * time.Minute, []string{"dockerfile_memory_factor"}},
		{"other build packs unchanged", EstimateRequest{Profile: "docker_build", BuildPack: "nixpacks"}, "docker_build", 80, 4 * placementtest.GiB, 8 * placementtest.GiB, 10 * time.Minute, nil},
		{"repository > 100 MB × 2 duration", EstimateRequest{Profile: "simple_static", RepositorySizeMB: fptr(250)}, "simple_static", 30, 512 * placementtest.MiB, 1 * placementtest.GiB, 4 * time.Minute, []string{"large_repository_duration_factor"}},
		{"repository of exactly 100 MB unchanged", EstimateRequest{Profile: "simple_static", RepositorySizeMB: fptr(100)}, "simple_static", 30, 512 * placementtest.MiB, 1 * placementtest.GiB, 2 * time.Minute, nil},
		{"both", EstimateRequest{BuildPack: "dockerfile", RepositorySizeMB: fptr(101)}, "node_application", 60, 3 * placementtest.GiB, 4 * placementtest.GiB, 10 * time.Minute, []string{"dockerfile_memory_factor", "large_repository_duration_factor"}},
	} {
		e, err := ProfileEstimate(p, tc.req)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var adj []string
		for _, a := range e.Adjustments {
			adj = append(adj, a.Name)
		}
		if e.Source != EstimateFromProfile || e.Profile != tc.profile || e.CPUPercent != tc.cpu || e.Memory != tc.memory ||
			e.Disk != tc.disk || e.Duration != tc.duration || e.DurationSeconds != tc.duration.Seconds() ||
			strings.Join(adj, ",") != strings.Join(tc.adjustments, ",") || e.HistoryBuilds != 0 {
			t.Errorf("%s: got %+v", tc.name, e)
		}
	}
}

func TestProfileEstimateFollowsPolicy(t *testing.T) {
	p, err := policy.Parse([]byte(`builds:
  default_profile: tiny
  profiles:
    tiny: {cpu_percent: 5, memory: 100Mi, disk: 0, duration: 30s}
  adjustments: {dockerfile_memory_factor: 3, large_repository_mb: 10, large_repository_duration_factor: 4}
`))
	if err != nil {
		t.Fatal(err)
	}
	e, err := ProfileEstimate(p, EstimateRequest{BuildPack: "dockerfile", RepositorySizeMB: fptr(11)})
	if err != nil {
		t.Fatal(err)
	}
	if e.Profile != "tiny" || e.Memory != 300*placementtest.MiB || e.Duration != 2*time.Minute || e.CPUPercent != 5 {
		t.Errorf("estimate %+v", e)
	}
}

func TestBuildEstimateRequestValidate(t *testing.T) {
	p := policy.Default()
	for _, tc := range []struct {
		req   EstimateRequest
		field string
	}{
		{EstimateRequest{Profile: "huge"}, "profile"},
		{EstimateRequest{BuildPack: "heroku"}, "build_pack"},
		{EstimateRequest{RepositorySizeMB: fptr(-1)}, "repository_size_mb"},
		{EstimateRequest{RepositorySizeMB: fptr(1e12)}, "repository_size_mb"},
		{EstimateRequest{ApplicationID: "a b"}, "application_id"},
		{EstimateRequest{ApplicationID: "a\x00"}, "application_id"},
		{EstimateRequest{ApplicationID: strings.Repeat("a", 257)}, "application_id"},
	} {
		_, err := ProfileEstimate(p, tc.req)
		var fe *placement.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: error %v, want a field error on %s", tc.req, err, tc.field)
		}
	}
}

func TestHistoryEstimate(t *testing.T) {
	base, err := ProfileEstimate(policy.Default(), EstimateRequest{BuildPack: "dockerfile", RepositorySizeMB: fptr(500)})
	if err != nil {
		t.Fatal(err)
	}
	build := func(d time.Duration) Finished {
		return Finished{ApplicationID: "app", Server: "b", StartedAt: placementtest.Now, EndedAt: placementtest.Now.Add(d)}
	}
	for _, tc := range []struct {
		name     string
		builds   []Finished
		usages   []Usage
		source   string
		n        int
		memory   placement.Bytes
		cpu      float64
		duration time.Duration
	}{
		{"no history: profile", nil, nil, EstimateFromProfile, 0, 3 * placementtest.GiB, 60, 10 * time.Minute},
		{"history without containers: profile", []Finished{build(time.Minute)}, []Usage{{}}, EstimateFromProfile, 0, 3 * placementtest.GiB, 60, 10 * time.Minute},
		// 4 cores × 60 s = 240 core-seconds; 120 core-seconds used = 50 %.
		{"one build", []Finished{build(time.Minute)}, []Usage{{PeakMemoryBytes: 700 * placementtest.MiB, CPUSeconds: 120, ServerCores: 4}}, EstimateFromHistory, 1, 700 * placementtest.MiB, 50, time.Minute},
		{"max memory, max cpu, median duration", []Finished{build(time.Minute), build(3 * time.Minute), build(2 * time.Minute)},
			[]Usage{{PeakMemoryBytes: 1 * placementtest.GiB, CPUSeconds: 60, ServerCores: 4}, {PeakMemoryBytes: 2 * placementtest.GiB, CPUSeconds: 90, ServerCores: 4}, {PeakMemoryBytes: 1.5 * placementtest.GiB, CPUSeconds: 480, ServerCores: 8}},
			EstimateFromHistory, 3, 2 * placementtest.GiB, 50, 2 * time.Minute},
		{"even count: mean of the middle two", []Finished{build(time.Minute), build(2 * time.Minute)},
			[]Usage{{PeakMemoryBytes: placementtest.GiB}, {PeakMemoryBytes: placementtest.GiB}}, EstimateFromHistory, 2, placementtest.GiB, 60, 90 * time.Second},
		{"unusable ones skipped", []Finished{build(time.Minute), build(0)},
			[]Usage{{PeakMemoryBytes: 100 * placementtest.MiB, CPUSeconds: 24, ServerCores: 4}, {PeakMemoryBytes: 9 * placementtest.GiB}}, EstimateFromHistory, 1, 100 * placementtest.MiB, 10, time.Minute},
	} {
		e := HistoryEstimate(base, tc.builds, tc.usages)
		if e.Source != tc.source || e.HistoryBuilds != tc.n || e.Memory != tc.memory || e.CPUPercent != tc.cpu || e.Duration != tc.duration {
			t.Errorf("%s: got %+v", tc.name, e)
		}
		if e.Disk != base.Disk {
			t.Errorf("%s: disk %v, want the profile's %v", tc.name, e.Disk, base.Disk)
		}
		if tc.source == EstimateFromHistory && len(e.Adjustments) != 0 {
			t.Errorf("%s: history estimate keeps adjustments %v", tc.name, e.Adjustments)
		}
	}
}

// fakeHistory answers from a map by build id, or fails.
type fakeHistory struct {
	usage map[string]Usage
	err   error
	asked []string
}

func (f *fakeHistory) BuildUsage(_ context.Context, b Finished) (Usage, bool, error) {
	f.asked = append(f.asked, b.ID)
	if f.err != nil {
		return Usage{}, false, f.err
	}
	u, ok := f.usage[b.ID]
	return u, ok, nil
}

func TestBuildEstimator(t *testing.T) {
	p := policy.Default()
	records, err := OpenRecords("")
	if err != nil {
		t.Fatal(err)
	}
	for i := range HistoryBuilds + 3 {
		start := placementtest.Now.Add(time.Duration(i) * time.Hour)
		r := placement.Reservation{ID: string(rune('a' + i)), Kind: placement.KindBuild, ApplicationID: "app", Server: "b", StartedAt: &start}
		if ok, err := records.Finish(r, start.Add(2*time.Minute), Usage{}); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	h := &fakeHistory{usage: map[string]Usage{"m": {PeakMemoryBytes: placementtest.GiB, CPUSeconds: 60, ServerCores: 1}}}
	est := NewEstimator(records, h, nil)

	e, herr, err := est.Estimate(context.Background(), p, EstimateRequest{ApplicationID: "app"})
	if err != nil || herr != nil {
		t.Fatal(err, herr)
	}
	if len(h.asked) != HistoryBuilds || h.asked[0] != "m" {
		t.Errorf("asked about %v, want the %d newest builds, newest first", h.asked, HistoryBuilds)
	}
	if e.Source != EstimateFromHistory || e.HistoryBuilds != 1 || e.Memory != placementtest.GiB || e.CPUPercent != 50 || e.Duration != 2*time.Minute {
		t.Errorf("history estimate %+v", e)
	}

	// Another application has no history: profile.
	e, _, _ = est.Estimate(context.Background(), p, EstimateRequest{ApplicationID: "other"})
	if e.Source != EstimateFromProfile {
		t.Errorf("application without builds: %+v", e)
	}

	// Prometheus failing degrades to the profile and says so.
	h.err = errors.New("connection refused")
	e, herr, err = est.Estimate(context.Background(), p, EstimateRequest{ApplicationID: "app"})
	if err != nil || herr == nil || e.Source != EstimateFromProfile || !strings.Contains(e.HistoryError, "connection refused") {
		t.Errorf("history failing: %+v, %v, %v", e, herr, err)
	}

	// A build whose usage was stored when it finished is not asked about
	// again: only the others go to Prometheus.
	h.err, h.asked = nil, nil
	start := placementtest.Now.Add(100 * time.Hour)
	stored := placement.Reservation{ID: "stored", Kind: placement.KindBuild, ApplicationID: "app", Server: "b", StartedAt: &start}
	if _, err := records.Finish(stored, start.Add(4*time.Minute), Usage{PeakMemoryBytes: 2 * placementtest.GiB, CPUSeconds: 120, ServerCores: 1}); err != nil {
		t.Fatal(err)
	}
	e, herr, err = est.Estimate(context.Background(), p, EstimateRequest{ApplicationID: "app"})
	if err != nil || herr != nil {
		t.Fatal(err, herr)
	}
	if slices.Contains(h.asked, "stored") || len(h.asked) != HistoryBuilds-1 {
		t.Errorf("asked about %v; the stored build must not be asked about", h.asked)
	}
	if e.Source != EstimateFromHistory || e.HistoryBuilds != 2 || e.Memory != 2*placementtest.GiB {
		t.Errorf("estimate with a stored build: %+v", e)
	}

	// A bad request is an error, not a fallback.
	if _, _, err := est.Estimate(context.Background(), p, EstimateRequest{Profile: "nope"}); err == nil {
		t.Error("unknown profile accepted")
	}
}

package policy

import (
	"github.com/berth-dev/berth/internal/placementtest"
	"github.com/berth-dev/berth/placement"

	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultPolicy(t *testing.T) {
	p := Default()
	if p.Fit.DefaultRequest.CPU != 0.5 || p.Fit.DefaultRequest.Memory != 512<<20 {
		t.Errorf("default request = %+v, want 0.5 CPU / 512Mi", p.Fit.DefaultRequest)
	}
	if p.Scoring.Strategy != placement.StrategySpread {
		t.Errorf("strategy = %q", p.Scoring.Strategy)
	}
	if w := p.Builds.Weights; w != (BuildWeights{CPU: 0.4, Memory: 0.3, Queue: 10, Active: 15}) {
		t.Errorf("build weights = %+v", w)
	}
	if p.Builds.ConcurrentBuilds != 2 || p.Builds.ConcurrentBuildsFor("any") != 2 {
		t.Errorf("concurrent builds = %d", p.Builds.ConcurrentBuilds)
	}
	want := map[string]BuildProfile{
		"simple_static":    {CPUPercent: 30, Memory: 512 << 20, Disk: 1 << 30, Duration: 2 * time.Minute},
		"node_application": {CPUPercent: 60, Memory: 2 << 30, Disk: 4 << 30, Duration: 5 * time.Minute},
		"docker_build":     {CPUPercent: 80, Memory: 4 << 30, Disk: 8 << 30, Duration: 10 * time.Minute},
		"large_monorepo":   {CPUPercent: 90, Memory: 8 << 30, Disk: 16 << 30, Duration: 20 * time.Minute},
	}
	if len(p.Builds.Profiles) != len(want) {
		t.Errorf("profiles = %v", p.Builds.Profiles)
	}
	for name, w := range want {
		if got := p.Builds.Profiles[name]; got != w {
			t.Errorf("profile %s = %+v, want %+v", name, got, w)
		}
	}
	a := p.Builds.Adjustments
	if a.DockerfileMemoryFactor != 1.5 || a.LargeRepositoryMB != 100 || a.LargeRepositoryDurationFactor != 2 {
		t.Errorf("adjustments = %+v", a)
	}
	if len(p.Quotas.Organizations) != 0 {
		t.Errorf("quotas = %v, want none", p.Quotas.Organizations)
	}
}

func TestParsePolicyMergesOverDefaults(t *testing.T) {
	p, err := Parse([]byte(`
fit:
  max_utilisation:
    memory: 0.8
builds:
  concurrent_builds: 3
  servers:
    build-1: {concurrent_builds: 5}
    build-2: {concurrent_builds: 0}
  profiles:
    node_application:
      memory: 3g
    rust:
      cpu_percent: 95
      memory: 6Gi
      disk: 10g
      duration: 15m
quotas:
  organizations:
    acme: {max_servers: 3, max_memory_gb: 32}
    frozen: {max_servers: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Fit.MaxUtilisation.Memory != 0.8 || p.Fit.MaxUtilisation.CPU != 0.9 {
		t.Errorf("max utilisation = %+v, want memory overridden, cpu default", p.Fit.MaxUtilisation)
	}
	if got := p.Builds.Profiles["node_application"]; got.Memory != 3<<30 || got.CPUPercent != 60 || got.Duration != 5*time.Minute {
		t.Errorf("partially overridden profile = %+v", got)
	}
	if _, ok := p.Builds.Profiles["simple_static"]; !ok || p.Builds.Profiles["rust"].CPUPercent != 95 {
		t.Errorf("profiles = %v, want defaults plus rust", p.Builds.Profiles)
	}
	if p.Builds.ConcurrentBuildsFor("build-1") != 5 || p.Builds.ConcurrentBuildsFor("build-2") != 0 || p.Builds.ConcurrentBuildsFor("build-3") != 3 {
		t.Errorf("build caps = %v", p.Builds.Servers)
	}
	acme := p.Quotas.Organizations["acme"]
	if acme.MaxServers == nil || *acme.MaxServers != 3 || acme.MaxMemoryGB == nil || *acme.MaxMemoryGB != 32 {
		t.Errorf("acme = %+v", acme)
	}
	if acme.MaxApplications != nil || acme.MaxCPUCores != nil {
		t.Errorf("acme unset limits must stay nil (unlimited): %+v", acme)
	}
	if f := p.Quotas.Organizations["frozen"]; f.MaxServers == nil || *f.MaxServers != 0 {
		t.Errorf("frozen = %+v, want max_servers 0 (none allowed)", f)
	}
	// Parsing again gives a fresh copy: the merge must not leak into the defaults.
	if d := Default(); d.Builds.Profiles["node_application"].Memory != 2<<30 || d.Fit.MaxUtilisation.Memory != 0.9 {
		t.Errorf("defaults changed by an earlier parse: %+v", d.Fit)
	}
}

// TestParsePolicyRefusesEmpty: a document that holds no settings is
// refused, not read as "all defaults": an emptied or truncated file must
// not silently reset quotas and build caps. {} is the explicit way.
func TestParsePolicyRefusesEmpty(t *testing.T) {
	for _, in := range []string{"", "# only a comment\n", "---\n", "---", "--- \n...\n", "null", "~\n", "\n\n  \n"} {
		p, err := Parse([]byte(in))
		if !errors.Is(err, ErrEmpty) || p != nil {
			t.Errorf("ParsePolicy(%q) = %v, %v; want ErrEmptyPolicy", in, p, err)
		}
	}
	if err := ErrEmpty.Error(); !strings.Contains(err, "write {}") || !strings.Contains(err, "leave out --placement.policy-file") {
		t.Errorf("the error does not say how to get the defaults: %s", err)
	}
	p, err := Parse([]byte("{}\n"))
	if err != nil || p.Freshness.Fresh != time.Minute || p.Builds.ConcurrentBuilds != 2 {
		t.Errorf("ParsePolicy({}) = %+v, %v; want the defaults", p, err)
	}
}

// policyErrorCases are policies ParsePolicy refuses, with what the error
// must say; FuzzParsePolicy is seeded with them too.
var policyErrorCases = []struct {
	name string
	in   string
	want []string // each must appear in the error
}{
	{"unknown top key", "fitt: {}\n", []string{"fitt: line 1: unknown field"}},
	{"unknown nested key", "fit:\n  max_utilisation:\n    gpu: 0.5\n", []string{"fit.max_utilisation.gpu: line 3: unknown field"}},
	{"unknown key in map value", "builds:\n  profiles:\n    x: {cpu: 1}\n", []string{"builds.profiles.x.cpu: line 3: unknown field"}},
	{"bad number", "fit:\n  default_disk_threshold: high\n", []string{`fit.default_disk_threshold: line 2: invalid value "high": want a number`}},
	{"bad duration", "freshness:\n  fresh: 60\n", []string{"freshness.fresh: line 2", "want a duration"}},
	{"bad size", "fit:\n  default_request:\n    memory: 12 parsecs\n", []string{"fit.default_request.memory: line 3", "unknown unit"}},
	{"section not a mapping", "fit: 3\n", []string{"fit: line 1: want a mapping"}},
	{"scalar where mapping", "- a\n", []string{"must be a mapping"}},
	{"not yaml", "fit: [\n", []string{"parse yaml"}},
	{"ratio > 1", "fit:\n  max_utilisation:\n    cpu: 1.5\n", []string{"fit.max_utilisation.cpu: must be > 0 and ≤ 1, got 1.5"}},
	{"ratio 0", "fit:\n  max_utilisation:\n    disk: 0\n", []string{"fit.max_utilisation.disk: must be > 0"}},
	{"negative default request", "fit:\n  default_request:\n    cpu: -1\n", []string{"fit.default_request.cpu", "must not be negative"}},
	{"stale < fresh", "freshness:\n  fresh: 5m\n  stale: 1m\n", []string{"freshness.stale: must be ≥ freshness.fresh"}},
	{"snapshot cache is a flag, not policy", "snapshot:\n  cache_ttl: 2m\n", []string{"snapshot", "unknown field"}},
	{"bad strategy", "scoring:\n  strategy: random\n", []string{`scoring.strategy: must be "spread" or "pack", got "random"`}},
	{"all weights zero", "scoring:\n  weights: {cpu: 0, memory: 0, disk: 0}\n", []string{"scoring.weights: at least one weight must be > 0"}},
	{"tie tolerance", "scoring:\n  tie_tolerance: 101\n", []string{"scoring.tie_tolerance: must be between 0 and 100"}},
	{"max ttl < default", "reservations:\n  max_ttl: 1m\n", []string{"reservations.max_ttl: must be ≥ reservations.default_ttl"}},
	{"zero grace", "reservations:\n  confirm_grace: 0s\n", []string{"reservations.confirm_grace: must be > 0"}},
	{"profile memory", "builds:\n  profiles:\n    node_application:\n      memory: 0\n", []string{"builds.profiles.node_application.memory: must be > 0"}},
	{"profile cpu", "builds:\n  profiles:\n    simple_static:\n      cpu_percent: 150\n", []string{"builds.profiles.simple_static.cpu_percent: must be > 0 and ≤ 100, got 150"}},
	{"new profile incomplete", "builds:\n  profiles:\n    rust: {cpu_percent: 50}\n", []string{"builds.profiles.rust.memory: must be > 0", "builds.profiles.rust.duration: must be > 0"}},
	{"default profile unknown", "builds:\n  default_profile: rust\n", []string{`builds.default_profile: "rust" is not one of builds.profiles`}},
	{"build cap", "builds:\n  concurrent_builds: 0\n", []string{"builds.concurrent_builds: must be ≥ 1, got 0"}},
	{"server build cap", "builds:\n  servers:\n    b1: {concurrent_builds: -1}\n", []string{"builds.servers.b1.concurrent_builds: must be ≥ 0, got -1"}},
	{"build weight", "builds:\n  weights: {queue: -10}\n", []string{"builds.weights.queue: must be ≥ 0, got -10"}},
	{"dockerfile factor", "builds:\n  adjustments: {dockerfile_memory_factor: 0}\n", []string{"builds.adjustments.dockerfile_memory_factor: must be > 0"}},
	{"quota negative", "quotas:\n  organizations:\n    acme: {max_servers: -1, max_memory_gb: -2}\n", []string{"quotas.organizations.acme.max_servers: must be ≥ 0", "quotas.organizations.acme.max_memory_gb: must be ≥ 0"}},
	{"quota cpu bad", "quotas:\n  organizations:\n    acme: {max_cpu_cores: lots}\n", []string{"quotas.organizations.acme.max_cpu_cores: line 3"}},
	{"quota unknown key", "quotas:\n  organizations:\n    acme: {max_gpus: 1}\n", []string{"quotas.organizations.acme.max_gpus: line 3: unknown field"}},
	{"several at once", "fit:\n  max_utilisation: {cpu: 2, memory: 2}\n", []string{"fit.max_utilisation.cpu", "fit.max_utilisation.memory"}},
	// A key without a value is refused, naming it, rather than emptying
	// the setting (a truncated file, or a section left empty).
	{"truncated after a section", "builds:\n  concurrent_builds: 5\nquotas:\n", []string{"quotas: line 3: no value", "leave the key out to keep its default"}},
	{"empty organizations", "quotas:\n  organizations:\n", []string{"quotas.organizations: line 2: no value"}},
	{"empty build servers", "builds:\n  servers:\n", []string{"builds.servers: line 2: no value"}},
	{"explicit null", "scoring:\n  tie_tolerance: null\n", []string{"scoring.tie_tolerance: line 2: no value"}},
	{"null quota limit", "quotas:\n  organizations:\n    acme: {max_servers: ~}\n", []string{"quotas.organizations.acme.max_servers: line 3: no value"}},
	{"organization without limits", "quotas:\n  organizations:\n    acme:\n", []string{"quotas.organizations.acme: line 3: no value"}},
	{"null cpu", "fit:\n  default_request:\n    cpu:\n", []string{"fit.default_request.cpu: line 3: no value"}},
	// Fractions where a whole number is wanted, in every int field.
	{"fractional max_servers", "quotas:\n  organizations:\n    acme: {max_servers: 2.5}\n", []string{"quotas.organizations.acme.max_servers: line 3: invalid value 2.5: want a whole number"}},
	{"fractional max_applications", "quotas:\n  organizations:\n    acme: {max_applications: 0.1}\n", []string{"quotas.organizations.acme.max_applications: line 3: invalid value 0.1: want a whole number"}},
	{"fractional build cap", "builds:\n  concurrent_builds: 2.9\n", []string{"builds.concurrent_builds: line 2: invalid value 2.9: want a whole number"}},
	{"fractional server cap", "builds:\n  servers:\n    b1: {concurrent_builds: 1.5}\n", []string{"builds.servers.b1.concurrent_builds: line 3: invalid value 1.5: want a whole number"}},
	{"whole number too large", "builds:\n  concurrent_builds: 1e30\n", []string{"builds.concurrent_builds: line 2", "want a whole number"}},
	// Duplicate keys, at any depth: the last one must not silently win.
	{"duplicate section", "scoring:\n  strategy: pack\nscoring:\n  strategy: spread\n", []string{"scoring: line 3: duplicate key (first at line 1)"}},
	{"duplicate leaf", "builds:\n  concurrent_builds: 5\n  concurrent_builds: 2\n", []string{"builds.concurrent_builds: line 3: duplicate key (first at line 2)"}},
	{"duplicate organization", "quotas:\n  organizations:\n    acme: {max_servers: 3}\n    acme: {max_servers: 9}\n", []string{"quotas.organizations.acme: line 4: duplicate key (first at line 3)"}},
	{"duplicate in a flow mapping", "quotas:\n  organizations:\n    acme: {max_servers: 3, max_servers: 9}\n", []string{"quotas.organizations.acme.max_servers: line 3: duplicate key"}},
	{"duplicate profile key", "builds:\n  profiles:\n    rust:\n      memory: 1g\n      memory: 2g\n", []string{"builds.profiles.rust.memory: line 5: duplicate key (first at line 4)"}},
	{"two documents", "scoring:\n  strategy: pack\n---\nscoring:\n  strategy: spread\n", []string{"line 3: a second YAML document", "the policy is one document"}},
	{"non-scalar key", "quotas:\n  organizations:\n    ? [a, b]\n    : {max_servers: 1}\n", []string{"quotas.organizations: line 3: a key must be a name"}},
}

func TestParsePolicyErrors(t *testing.T) {
	for _, tc := range policyErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("ParsePolicy accepted:\n%s", tc.in)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParsePolicyFieldErrorType(t *testing.T) {
	_, err := Parse([]byte("builds:\n  profiles:\n    node_application:\n      memory: 0\n"))
	var fe *placement.FieldError
	if !errors.As(err, &fe) || fe.Field != "builds.profiles.node_application.memory" {
		t.Fatalf("err = %#v, want a *FieldError for builds.profiles.node_application.memory", err)
	}
	if err.Error() != "builds.profiles.node_application.memory: must be > 0" {
		t.Errorf("message = %q", err.Error())
	}
}

func TestLoadPolicy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yml")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "read placement policy") {
		t.Errorf("missing file: err = %v", err)
	}
	placementtest.WriteFile(t, path, "scoring:\n  strategy: pack\n")
	p, err := Load(path)
	if err != nil || p.Scoring.Strategy != placement.StrategyPack {
		t.Fatalf("LoadPolicy = %+v, %v", p, err)
	}
	placementtest.WriteFile(t, path, "scoring:\n  strategy: nope\n")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "scoring.strategy") {
		t.Errorf("bad file: err = %v, want the path and the field", err)
	}
	placementtest.WriteFile(t, path, "# emptied\n")
	if _, err := Load(path); !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), path) {
		t.Errorf("empty file: err = %v, want ErrEmptyPolicy naming the file", err)
	}
}

func TestPolicyStoreReloadKeepsOldOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yml")
	placementtest.WriteFile(t, path, "scoring:\n  strategy: pack\n")
	s, err := NewStore(path)
	if err != nil {
		t.Fatal(err)
	}
	first := s.Policy()
	if first.Scoring.Strategy != placement.StrategyPack {
		t.Fatalf("strategy = %q", first.Scoring.Strategy)
	}

	placementtest.WriteFile(t, path, "scoring:\n  strategy: pack\nquotas:\n  organizations:\n    acme: {max_servers: -3}\n")
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "quotas.organizations.acme.max_servers") {
		t.Fatalf("reload of a bad file: err = %v", err)
	}
	if s.Policy() != first {
		t.Fatal("a refused reload replaced the policy")
	}

	// An emptied or truncated file is refused too: quotas and caps stay.
	for _, bad := range []string{"", "---\n", "scoring:\n  strategy: pack\nquotas:\n"} {
		placementtest.WriteFile(t, path, bad)
		if err := s.Reload(); err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("reload of %q: err = %v, want a refusal naming the file", bad, err)
		}
		if s.Policy() != first {
			t.Fatalf("a refused reload of %q replaced the policy", bad)
		}
	}

	placementtest.WriteFile(t, path, "scoring:\n  strategy: spread\n")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if s.Policy().Scoring.Strategy != placement.StrategySpread {
		t.Errorf("reload did not apply: %q", s.Policy().Scoring.Strategy)
	}
	if first.Scoring.Strategy != placement.StrategyPack {
		t.Error("reload mutated the previous policy value")
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil {
		t.Error("reload of a missing file succeeded")
	}
	if s.Policy().Scoring.Strategy != placement.StrategySpread {
		t.Error("a failed reload changed the policy")
	}

	if _, err := NewStore(path); err == nil {
		t.Error("NewPolicyStore on a missing file succeeded")
	}
	def, err := NewStore("")
	if err != nil || def.Policy().Scoring.Strategy != placement.StrategySpread {
		t.Errorf("defaults store = %v", err)
	}
}

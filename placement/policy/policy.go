// Package policy is the placement policy: every threshold, weight,
// default, window, build profile and quota placement uses, read strictly
// from one YAML file over embedded defaults (Parse, Load), validated, and
// held by a Store that reloads it or refuses a bad file and keeps the old
// one.
package policy

import (
	"github.com/berth-dev/berth/placement"

	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"
)

//go:embed policy_default.yml
var defaultPolicyYAML []byte

// Policy holds every threshold, weight, default and window placement uses.
// A Policy is immutable once loaded: readers share it without locks and
// must not modify it (its maps included); a reload swaps in a new one.
type Policy struct {
	Fit          FitPolicy         `yaml:"fit"`
	Freshness    FreshnessPolicy   `yaml:"freshness"`
	Scoring      ScoringPolicy     `yaml:"scoring"`
	Reservations ReservationPolicy `yaml:"reservations"`
	Builds       BuildPolicy       `yaml:"builds"`
	Quotas       QuotaPolicy       `yaml:"quotas"`
}

// Ratios is one ratio (0..1) per resource dimension.
type Ratios struct {
	CPU    float64 `yaml:"cpu"`
	Memory float64 `yaml:"memory"`
	Disk   float64 `yaml:"disk"`
}

// FitPolicy tunes the fit check.
type FitPolicy struct {
	// MaxUtilisation is the share of each dimension's capacity placements
	// may fill. Disk is further capped by each server's own threshold.
	MaxUtilisation Ratios `yaml:"max_utilisation"`
	// DefaultRequest is what a running container without a limit is
	// charged, per container.
	DefaultRequest DefaultRequest `yaml:"default_request"`
	// DefaultDiskThreshold applies to servers that publish no threshold.
	DefaultDiskThreshold float64 `yaml:"default_disk_threshold"`
}

// DefaultRequest is the charge for an unlimited container.
type DefaultRequest struct {
	CPU    placement.Cores `yaml:"cpu"`
	Memory placement.Bytes `yaml:"memory"`
}

// Charge is what containers without a CPU quota (unlimitedCPU) and without
// a memory limit (unlimitedMemory) count as, in cores and bytes. Fit and
// quotas both charge them this way.
func (d DefaultRequest) Charge(unlimitedCPU, unlimitedMemory int) (cores float64, bytes int64) {
	return float64(unlimitedCPU) * float64(d.CPU), int64(unlimitedMemory) * int64(d.Memory)
}

// FreshnessPolicy sets how old a server's newest sample may be.
type FreshnessPolicy struct {
	// Fresh is the largest age of a fresh server.
	Fresh time.Duration `yaml:"fresh"`
	// Stale is the largest age of a stale server; older is missing.
	Stale time.Duration `yaml:"stale"`
}

// Weights is one weight per resource dimension.
type Weights struct {
	CPU    float64 `yaml:"cpu"`
	Memory float64 `yaml:"memory"`
	Disk   float64 `yaml:"disk"`
}

// ScoringPolicy tunes the ranking of servers that fit.
type ScoringPolicy struct {
	Strategy placement.Strategy `yaml:"strategy"`
	Weights  Weights            `yaml:"weights"`
	// TieTolerance is the score distance (points of 0..100) within which
	// the best candidates count as equal and are picked among by hash.
	TieTolerance float64 `yaml:"tie_tolerance"`
}

// ReservationPolicy tunes reservation lifetimes.
type ReservationPolicy struct {
	DefaultTTL time.Duration `yaml:"default_ttl"`
	MaxTTL     time.Duration `yaml:"max_ttl"`
	// ConfirmGrace is how long a confirmed reservation keeps counting while
	// the new container shows up in metrics.
	ConfirmGrace time.Duration `yaml:"confirm_grace"`
}

// BuildPolicy tunes build-server choice and build estimates.
type BuildPolicy struct {
	Weights BuildWeights `yaml:"weights"`
	// TieTolerance is the load-score distance (load points, as the score:
	// 1 point = 2.5 CPU % or 3.3 memory % at the default weights, a queued
	// build 10) within which build servers count as equally loaded and are
	// picked among by hash. 0: strictly least loaded (only equal scores tie).
	TieTolerance float64 `yaml:"tie_tolerance"`
	// ConcurrentBuilds is the default cap of running builds per build server.
	ConcurrentBuilds int `yaml:"concurrent_builds"`
	// Servers holds per-server overrides, by server name.
	Servers        map[string]BuildServerPolicy `yaml:"servers"`
	DefaultProfile string                       `yaml:"default_profile"`
	Profiles       map[string]BuildProfile      `yaml:"profiles"`
	Adjustments    BuildAdjustments             `yaml:"adjustments"`
}

// ConcurrentBuildsFor is server's build cap: its override or the default.
func (b *BuildPolicy) ConcurrentBuildsFor(server string) int {
	if o, ok := b.Servers[server]; ok && o.ConcurrentBuilds != nil {
		return *o.ConcurrentBuilds
	}
	return b.ConcurrentBuilds
}

// BuildWeights are the terms of the build-server load score (lower is
// better): cpu% × CPU + memory% × Memory + queued × Queue + active × Active.
type BuildWeights struct {
	CPU    float64 `yaml:"cpu"`
	Memory float64 `yaml:"memory"`
	Queue  float64 `yaml:"queue"`
	Active float64 `yaml:"active"`
}

// BuildServerPolicy overrides build settings for one server.
type BuildServerPolicy struct {
	// ConcurrentBuilds is this server's cap; nil keeps the default, 0
	// allows no builds.
	ConcurrentBuilds *int `yaml:"concurrent_builds"`
}

// BuildProfile is a build estimate before adjustments.
type BuildProfile struct {
	// CPUPercent is the share of one build server's CPU the build uses (0..100].
	CPUPercent float64         `yaml:"cpu_percent"`
	Memory     placement.Bytes `yaml:"memory"`
	Disk       placement.Bytes `yaml:"disk"`
	Duration   time.Duration   `yaml:"duration"`
}

// BuildAdjustments modify a profile's estimate.
type BuildAdjustments struct {
	// DockerfileMemoryFactor multiplies memory for Dockerfile build packs.
	DockerfileMemoryFactor float64 `yaml:"dockerfile_memory_factor"`
	// LargeRepositoryMB is the repository size above which
	// LargeRepositoryDurationFactor multiplies the duration.
	LargeRepositoryMB             float64 `yaml:"large_repository_mb"`
	LargeRepositoryDurationFactor float64 `yaml:"large_repository_duration_factor"`
}

// QuotaPolicy holds organization quotas.
type QuotaPolicy struct {
	// Organizations maps an organization name to its limits; an
	// organization not listed is unlimited.
	Organizations map[string]QuotaLimits `yaml:"organizations"`
}

// QuotaLimits are one organization's limits. A nil limit is unlimited; a
// zero limit allows none.
type QuotaLimits struct {
	MaxServers      *int             `yaml:"max_servers"`
	MaxApplications *int             `yaml:"max_applications"`
	MaxCPUCores     *placement.Cores `yaml:"max_cpu_cores"`
	MaxMemoryGB     *float64         `yaml:"max_memory_gb"` // GiB (2³⁰ bytes), as Kubernetes' Gi
}

// Default returns the embedded defaults.
func Default() *Policy {
	p, err := mergedPolicy(nil)
	if err != nil {
		// The embedded file is tested; failing here is a build defect.
		panic(fmt.Sprintf("embedded placement policy is invalid: %v", err))
	}
	return p
}

// Load reads the policy file at path over the embedded defaults.
// Errors name the file.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read placement policy: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("placement policy %s: %w", path, err)
	}
	return p, nil
}

// ErrEmpty is a policy document that holds no settings: empty, only
// comments, only "---" or null. It is refused rather than read as "all
// defaults", so that an emptied or truncated file cannot silently reset a
// running policy.
var ErrEmpty = errors.New("the policy holds no settings (the file is empty, or only comments or \"---\"); " +
	"to run on the embedded defaults write {} or leave out --placement.policy-file")

// Parse parses a policy document and merges it over the embedded
// defaults key by key: mappings merge, scalars replace. The document must
// be one YAML mapping (ErrEmptyPolicy when it holds nothing). Unknown keys,
// duplicate keys, keys without a value, badly typed values (a fraction
// where a whole number is wanted included) are refused, then the result is
// validated. Errors are *FieldError values (joined when several) naming the
// field path.
func Parse(data []byte) (*Policy, error) {
	u, err := policyDocument(data)
	if err != nil {
		return nil, err
	}
	if errs := checkNode(u, reflect.TypeFor[Policy](), ""); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return mergedPolicy(u)
}

// policyDocument returns the one mapping a policy document holds.
func policyDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrEmpty
		}
		return nil, fmt.Errorf("parse yaml: %w", err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, fmt.Errorf("line %d: a second YAML document (\"---\"): the policy is one document", next.Line)
	case !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("parse yaml: %w", err)
	}
	u := doc.Content[0]
	if u.Kind == yaml.AliasNode && u.Alias != nil {
		u = u.Alias
	}
	if u.Kind == yaml.ScalarNode && u.Tag == "!!null" {
		return nil, ErrEmpty
	}
	if u.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the policy must be a mapping of sections (fit, freshness, …)", u.Line)
	}
	return u, nil
}

// defaultPolicyNode is the embedded defaults' mapping, parsed once; merges
// work on a copy.
var defaultPolicyNode = sync.OnceValues(func() (*yaml.Node, error) {
	var base yaml.Node
	if err := yaml.Unmarshal(defaultPolicyYAML, &base); err != nil {
		return nil, fmt.Errorf("embedded defaults: %w", err)
	}
	return base.Content[0], nil
})

// copyNode copies a node tree without aliases (the embedded defaults).
func copyNode(n *yaml.Node) *yaml.Node {
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, child := range n.Content {
		c.Content[i] = copyNode(child)
	}
	return &c
}

// mergedPolicy merges the checked mapping u (nil: none) over the embedded
// defaults, decodes and validates the result.
func mergedPolicy(u *yaml.Node) (*Policy, error) {
	base, err := defaultPolicyNode()
	if err != nil {
		return nil, err
	}
	root := copyNode(base)
	if u != nil {
		mergeNodes(root, u)
	}
	p := &Policy{}
	if err := root.Decode(p); err != nil {
		return nil, fmt.Errorf("decode policy: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

var (
	yamlUnmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	durationType        = reflect.TypeFor[time.Duration]()
)

// checkNode walks a user document against the Go type it decodes into and
// reports, with their field path (which yaml.v3's own errors, with line
// numbers and Go type names, do not give): unknown keys, duplicate keys
// (yaml.v3 would let the last one win), keys without a value (yaml.v3
// would empty the setting: a truncated file must not reset it), values of
// the wrong type, and fractions where a whole number is wanted (yaml.v3
// would truncate them).
func checkNode(n *yaml.Node, t reflect.Type, path string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return []error{&placement.FieldError{Field: path, Err: fmt.Errorf("line %d: no value (a truncated file?): give one, or leave the key out to keep its default", n.Line)}}
	}
	leaf := reflect.PointerTo(t).Implements(yamlUnmarshalerType) || t == durationType ||
		(t.Kind() != reflect.Struct && t.Kind() != reflect.Map)
	if leaf {
		if n.Kind != yaml.ScalarNode {
			return []error{&placement.FieldError{Field: path, Err: fmt.Errorf("line %d: want %s, got a %s", n.Line, describeType(t), nodeKind(n))}}
		}
		if isInt(t) && n.Tag == "!!float" {
			if f, err := strconv.ParseFloat(n.Value, 64); err == nil && f != math.Trunc(f) {
				return []error{&placement.FieldError{Field: path, Err: fmt.Errorf("line %d: invalid value %s: want a whole number", n.Line, n.Value)}}
			}
		}
		v := reflect.New(t)
		if err := n.Decode(v.Interface()); err != nil {
			if reflect.PointerTo(t).Implements(yamlUnmarshalerType) {
				// Our own unmarshalers' errors already quote the value.
				return []error{&placement.FieldError{Field: path, Err: fmt.Errorf("line %d: %w", n.Line, err)}}
			}
			return []error{&placement.FieldError{Field: path, Err: fmt.Errorf("line %d: invalid value %q: want %s", n.Line, n.Value, describeType(t))}}
		}
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return []error{&placement.FieldError{Field: path, Err: fmt.Errorf("line %d: want a mapping, got a %s", n.Line, nodeKind(n))}}
	}
	var errs []error
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		sub := joinPath(path, key.Value)
		if key.Kind != yaml.ScalarNode {
			errs = append(errs, &placement.FieldError{Field: path, Err: fmt.Errorf("line %d: a key must be a name, got a %s", key.Line, nodeKind(key))})
			continue
		}
		if first, dup := seen[key.Value]; dup {
			errs = append(errs, &placement.FieldError{Field: sub, Err: fmt.Errorf("line %d: duplicate key (first at line %d)", key.Line, first)})
			continue
		}
		seen[key.Value] = key.Line
		switch t.Kind() {
		case reflect.Map:
			errs = append(errs, checkNode(val, t.Elem(), sub)...)
		case reflect.Struct:
			f, ok := fieldByYAMLName(t, key.Value)
			if !ok {
				errs = append(errs, &placement.FieldError{Field: sub, Err: fmt.Errorf("line %d: unknown field", key.Line)})
				continue
			}
			errs = append(errs, checkNode(val, f.Type, sub)...)
		}
	}
	return errs
}

func isInt(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

func fieldByYAMLName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func describeType(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration like 60s or 5m"
	case t.Kind() == reflect.Float64:
		return "a number"
	case isInt(t):
		return "a whole number"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	}
	return "a " + t.String()
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "sequence"
	}
	return "scalar"
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// mergeNodes merges the mapping src into the mapping dst: keys whose values
// are mappings on both sides merge recursively, others are replaced or added.
func mergeNodes(dst, src *yaml.Node) {
	for i := 0; i+1 < len(src.Content); i += 2 {
		key, val := src.Content[i], src.Content[i+1]
		if val.Kind == yaml.AliasNode && val.Alias != nil {
			val = val.Alias
		}
		found := false
		for j := 0; j+1 < len(dst.Content); j += 2 {
			if dst.Content[j].Value != key.Value {
				continue
			}
			found = true
			if dv := dst.Content[j+1]; dv.Kind == yaml.MappingNode && val.Kind == yaml.MappingNode {
				mergeNodes(dv, val)
			} else {
				dst.Content[j+1] = val
			}
			break
		}
		if !found {
			dst.Content = append(dst.Content, key, val)
		}
	}
}

// Validate checks every value and returns all problems, each a *FieldError
// naming its field path.
func (p *Policy) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &placement.FieldError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	ratio := func(field string, v float64) {
		if !(v > 0 && v <= 1) {
			add(field, "must be > 0 and ≤ 1, got %g", v)
		}
	}
	nonNeg := func(field string, v float64) {
		if !(v >= 0) || math.IsInf(v, 0) {
			add(field, "must be ≥ 0, got %g", v)
		}
	}
	positiveDur := func(field string, d time.Duration) {
		if d <= 0 {
			add(field, "must be > 0, got %s", d)
		}
	}

	ratio("fit.max_utilisation.cpu", p.Fit.MaxUtilisation.CPU)
	ratio("fit.max_utilisation.memory", p.Fit.MaxUtilisation.Memory)
	ratio("fit.max_utilisation.disk", p.Fit.MaxUtilisation.Disk)
	ratio("fit.default_disk_threshold", p.Fit.DefaultDiskThreshold)
	nonNeg("fit.default_request.cpu", float64(p.Fit.DefaultRequest.CPU))
	nonNeg("fit.default_request.memory", float64(p.Fit.DefaultRequest.Memory))

	positiveDur("freshness.fresh", p.Freshness.Fresh)
	if p.Freshness.Stale < p.Freshness.Fresh {
		add("freshness.stale", "must be ≥ freshness.fresh (%s), got %s", p.Freshness.Fresh, p.Freshness.Stale)
	}

	if !p.Scoring.Strategy.Valid() {
		add("scoring.strategy", "must be %q or %q, got %q", placement.StrategySpread, placement.StrategyPack, p.Scoring.Strategy)
	}
	w := p.Scoring.Weights
	nonNeg("scoring.weights.cpu", w.CPU)
	nonNeg("scoring.weights.memory", w.Memory)
	nonNeg("scoring.weights.disk", w.Disk)
	if w.CPU+w.Memory+w.Disk <= 0 {
		add("scoring.weights", "at least one weight must be > 0")
	}
	if !(p.Scoring.TieTolerance >= 0 && p.Scoring.TieTolerance <= 100) {
		add("scoring.tie_tolerance", "must be between 0 and 100, got %g", p.Scoring.TieTolerance)
	}

	positiveDur("reservations.default_ttl", p.Reservations.DefaultTTL)
	if p.Reservations.MaxTTL < p.Reservations.DefaultTTL {
		add("reservations.max_ttl", "must be ≥ reservations.default_ttl (%s), got %s", p.Reservations.DefaultTTL, p.Reservations.MaxTTL)
	}
	positiveDur("reservations.confirm_grace", p.Reservations.ConfirmGrace)

	b := &p.Builds
	nonNeg("builds.weights.cpu", b.Weights.CPU)
	nonNeg("builds.weights.memory", b.Weights.Memory)
	nonNeg("builds.weights.queue", b.Weights.Queue)
	nonNeg("builds.weights.active", b.Weights.Active)
	nonNeg("builds.tie_tolerance", b.TieTolerance)
	if b.ConcurrentBuilds < 1 {
		add("builds.concurrent_builds", "must be ≥ 1, got %d", b.ConcurrentBuilds)
	}
	for _, name := range sortedKeys(b.Servers) {
		if c := b.Servers[name].ConcurrentBuilds; c != nil && *c < 0 {
			add("builds.servers."+name+".concurrent_builds", "must be ≥ 0, got %d", *c)
		}
	}
	if len(b.Profiles) == 0 {
		add("builds.profiles", "at least one profile is needed")
	}
	for _, name := range sortedKeys(b.Profiles) {
		pr := b.Profiles[name]
		f := "builds.profiles." + name
		if !(pr.CPUPercent > 0 && pr.CPUPercent <= 100) {
			add(f+".cpu_percent", "must be > 0 and ≤ 100, got %g", pr.CPUPercent)
		}
		if pr.Memory <= 0 {
			add(f+".memory", "must be > 0")
		}
		if pr.Disk < 0 {
			add(f+".disk", "must be ≥ 0")
		}
		positiveDur(f+".duration", pr.Duration)
	}
	if _, ok := b.Profiles[b.DefaultProfile]; !ok {
		add("builds.default_profile", "%q is not one of builds.profiles (%s)", b.DefaultProfile, strings.Join(sortedKeys(b.Profiles), ", "))
	}
	if a := b.Adjustments; !(a.DockerfileMemoryFactor > 0) || math.IsInf(a.DockerfileMemoryFactor, 0) {
		add("builds.adjustments.dockerfile_memory_factor", "must be > 0, got %g", a.DockerfileMemoryFactor)
	}
	nonNeg("builds.adjustments.large_repository_mb", b.Adjustments.LargeRepositoryMB)
	if f := b.Adjustments.LargeRepositoryDurationFactor; !(f > 0) || math.IsInf(f, 0) {
		add("builds.adjustments.large_repository_duration_factor", "must be > 0, got %g", f)
	}

	for _, org := range sortedKeys(p.Quotas.Organizations) {
		q := p.Quotas.Organizations[org]
		f := "quotas.organizations." + org
		if org == "" {
			add("quotas.organizations", "organization name must not be empty")
		}
		if q.MaxServers != nil && *q.MaxServers < 0 {
			add(f+".max_servers", "must be ≥ 0 (0 allows none; leave out for unlimited), got %d", *q.MaxServers)
		}
		if q.MaxApplications != nil && *q.MaxApplications < 0 {
			add(f+".max_applications", "must be ≥ 0 (0 allows none; leave out for unlimited), got %d", *q.MaxApplications)
		}
		if q.MaxMemoryGB != nil && (!(*q.MaxMemoryGB >= 0) || math.IsInf(*q.MaxMemoryGB, 0)) {
			add(f+".max_memory_gb", "must be ≥ 0 (0 allows none; leave out for unlimited), got %g", *q.MaxMemoryGB)
		}
	}
	return errors.Join(errs...)
}

// Store holds the current policy and reloads it from its file. A file
// that fails to load or validate is refused and the current policy stays.
type Store struct {
	path   string
	static bool

	mu  sync.Mutex // serialises reloads so an older read never wins
	cur atomic.Pointer[Policy]
}

// NewStore loads the policy at path over the defaults; an empty path
// uses the embedded defaults only.
func NewStore(path string) (*Store, error) {
	s := &Store{path: path}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// NewStaticStore holds p and never reloads from a file (tests,
// embedding).
func NewStaticStore(p *Policy) *Store {
	s := &Store{static: true}
	s.cur.Store(p)
	return s
}

// Policy returns the current policy. Callers use one value for a whole
// decision so that a concurrent reload cannot mix two policies.
func (s *Store) Policy() *Policy { return s.cur.Load() }

// Path is the policy file's path, empty for the embedded defaults.
func (s *Store) Path() string { return s.path }

// Reload reads the policy file again. On error the current policy stays
// and the error says why the file was refused. A static store keeps its
// policy.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.static {
		return nil
	}
	var (
		p   *Policy
		err error
	)
	if s.path == "" {
		p, err = mergedPolicy(nil)
	} else {
		p, err = Load(s.path)
	}
	if err != nil {
		return err
	}
	s.cur.Store(p)
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

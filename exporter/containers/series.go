package containers

import (
	"slices"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// labelLayout knows, once per collector, where each label goes in the
// sorted order.
type labelLayout struct {
	names []string // base label names in the order values are given
	order []int    // order[i] = index in names of the i-th label by name
	id    int      // index in names of "id"
}

func newLabelLayout(names []string) labelLayout {
	order := make([]int, len(names))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return names[order[a]] < names[order[b]] })
	return labelLayout{names: names, order: order, id: slices.Index(names, "id")}
}

// Extra label names, addressable for shared label pairs.
var (
	labelState     = "state"
	labelCPU       = "cpu"
	labelInterface = "interface"
	cpuTotal       = "total"
)

// containerLabels are the label pairs of one container's series, built
// when its metadata or cgroup changes, not on every scrape, and shared by
// all its series (client_golang treats a metric's label pairs as immutable,
// so sharing is allowed). It is never modified once built: withInterface
// returns a copy, so a concurrent scrape may keep using the old one.
type containerLabels struct {
	role string
	base []*dto.LabelPair // sorted by name
	info []*dto.LabelPair // base and state
	cpu  []*dto.LabelPair // base and cpu="total"
	// oom is base with an empty id: container_oom_events_total outlives
	// the cgroup of each run.
	oom    []*dto.LabelPair
	ifaces map[string][]*dto.LabelPair
}

// newContainerLabels pairs values (in the order of the layout's names)
// with their names, sorted.
func newContainerLabels(l labelLayout, values []string, state, role string) *containerLabels {
	pairs := make([]dto.LabelPair, len(values))
	base := make([]*dto.LabelPair, len(values))
	for i, idx := range l.order {
		pairs[i] = dto.LabelPair{Name: &l.names[idx], Value: &values[idx]}
		base[i] = &pairs[i]
	}
	oom := base
	if values[l.id] != "" {
		noID := make([]string, len(values))
		copy(noID, values)
		noID[l.id] = ""
		oom = newContainerLabels(l, noID, state, role).base
	}
	return &containerLabels{
		role: role,
		base: base,
		info: with(base, &labelState, &state),
		cpu:  with(base, &labelCPU, &cpuTotal),
		oom:  oom,
	}
}

// withInterface returns labels that also have the pairs of network
// interface name.
func (c *containerLabels) withInterface(name string) *containerLabels {
	if _, ok := c.ifaces[name]; ok {
		return c
	}
	out := *c
	out.ifaces = make(map[string][]*dto.LabelPair, len(c.ifaces)+1)
	for k, v := range c.ifaces {
		out.ifaces[k] = v
	}
	out.ifaces[name] = with(c.base, &labelInterface, &name)
	return &out
}

// with returns the pairs plus one more label, still sorted.
func with(base []*dto.LabelPair, name, value *string) []*dto.LabelPair {
	out := make([]*dto.LabelPair, 0, len(base)+1)
	extra := &dto.LabelPair{Name: name, Value: value}
	inserted := false
	for _, p := range base {
		if !inserted && *name < p.GetName() {
			out = append(out, extra)
			inserted = true
		}
		out = append(out, p)
	}
	if !inserted {
		out = append(out, extra)
	}
	return out
}

// sample is one series of a container.
type sample struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	kind   prometheus.ValueType
	value  float64
}

func (s *sample) Desc() *prometheus.Desc { return s.desc }

func (s *sample) Write(out *dto.Metric) error {
	out.Label = s.labels
	v := s.value
	if s.kind == prometheus.CounterValue {
		out.Counter = &dto.Counter{Value: &v}
	} else {
		out.Gauge = &dto.Gauge{Value: &v}
	}
	return nil
}

package containers

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// labelSet builds the label pairs of one container once per scrape; all its
// series share them instead of each building, validating and sorting its
// own (client_golang treats a metric's label pairs as immutable, so sharing
// is allowed). At ~17 series and ~13 labels per container this halves the
// collector's allocations.
type labelSet struct {
	base []*dto.LabelPair // sorted by name
}

// labelLayout knows, once per collector, where each label goes in the
// sorted order.
type labelLayout struct {
	names []string // base label names in the order values are given
	order []int    // order[i] = index in names of the i-th label by name
}

func newLabelLayout(names []string) labelLayout {
	order := make([]int, len(names))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return names[order[a]] < names[order[b]] })
	return labelLayout{names: names, order: order}
}

// set pairs values (in the order of names) with their names, sorted.
func (l labelLayout) set(values []string) labelSet {
	pairs := make([]dto.LabelPair, len(values))
	out := make([]*dto.LabelPair, len(values))
	for i, idx := range l.order {
		pairs[i] = dto.LabelPair{Name: &l.names[idx], Value: &values[idx]}
		out[i] = &pairs[i]
	}
	return labelSet{base: out}
}

// with returns the pairs plus one more label, still sorted.
func (s labelSet) with(name, value *string) []*dto.LabelPair {
	out := make([]*dto.LabelPair, 0, len(s.base)+1)
	extra := &dto.LabelPair{Name: name, Value: value}
	inserted := false
	for _, p := range s.base {
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

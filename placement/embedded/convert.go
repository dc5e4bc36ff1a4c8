package embedded

import (
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// toModel converts an engine result to the client types the Querier
// returns, so embedded and remote answers look alike. Native histogram
// samples are left out: no recording rule Berth reads produces them.
func toModel(v parser.Value) model.Value {
	switch v := v.(type) {
	case promql.Vector:
		out := make(model.Vector, 0, len(v))
		for _, s := range v {
			if s.H != nil {
				continue
			}
			out = append(out, &model.Sample{Metric: toMetric(s.Metric), Value: model.SampleValue(s.F), Timestamp: model.Time(s.T)})
		}
		return out
	case promql.Matrix:
		out := make(model.Matrix, 0, len(v))
		for _, s := range v {
			stream := &model.SampleStream{Metric: toMetric(s.Metric), Values: make([]model.SamplePair, len(s.Floats))}
			for i, p := range s.Floats {
				stream.Values[i] = model.SamplePair{Timestamp: model.Time(p.T), Value: model.SampleValue(p.F)}
			}
			out = append(out, stream)
		}
		return out
	case promql.Scalar:
		return &model.Scalar{Value: model.SampleValue(v.V), Timestamp: model.Time(v.T)}
	case promql.String:
		return &model.String{Value: v.V, Timestamp: model.Time(v.T)}
	}
	return nil
}

func toMetric(ls labels.Labels) model.Metric {
	m := make(model.Metric, ls.Len())
	ls.Range(func(l labels.Label) { m[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
	return m
}

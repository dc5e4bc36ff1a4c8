package system

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// meminfoCollector exports every line of /proc/meminfo as
// node_memory_<Key>[_bytes], named exactly as node_exporter names them.
type meminfoCollector struct {
	paths Paths
	descs *descCache
}

func newMeminfoCollector(paths Paths) *meminfoCollector {
	return &meminfoCollector{paths: paths, descs: newDescCache()}
}

// memField is one exported /proc/meminfo line.
type memField struct {
	// Name is the metric suffix: Active(anon) in kB becomes Active_anon_bytes.
	Name  string
	Value float64
}

// Update implements exporter.Collector.
func (c *meminfoCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	var fields []memField
	err := withFile(c.paths.proc("meminfo"), func(data []byte) (err error) {
		fields, err = parseMeminfo(string(data))
		return err
	})
	if err != nil {
		return fmt.Errorf("reading memory info: %w", err)
	}
	for _, f := range fields {
		valueType := prometheus.GaugeValue
		if strings.HasSuffix(f.Name, "_total") {
			valueType = prometheus.CounterValue
		}
		desc := c.descs.get(namespace+"_memory_"+f.Name, "Memory information field "+f.Name+".")
		m, err := prometheus.NewConstMetric(desc, valueType, f.Value)
		if err != nil {
			// A key the kernel might add with characters a metric name
			// cannot hold must not fail the other fields.
			continue
		}
		ch <- m
	}
	return nil
}

// parseMeminfo parses /proc/meminfo. Keys lose their colon and turn
// "Key(sub)" into "Key_sub"; values with a unit (always kB) are converted to
// bytes and their name gets the _bytes suffix.
func parseMeminfo(data string) ([]memField, error) {
	var out []memField
	for line := range strings.Lines(data) {
		parts := strings.Fields(line)
		if len(parts) == 0 {
			continue // some kernels emit empty lines
		}
		if len(parts) < 2 || !strings.HasSuffix(parts[0], ":") {
			return nil, fmt.Errorf("parsing meminfo line %q: want \"Key: value [kB]\"", strings.TrimSpace(line))
		}
		v, err := strconv.ParseFloat(parts[1], 64)
		if err != nil {
			return nil, fmt.Errorf("parsing meminfo value in %q: %w", strings.TrimSpace(line), err)
		}
		key := strings.TrimSuffix(parts[0], ":")
		if open := strings.IndexByte(key, '('); open >= 0 {
			if end := strings.LastIndexByte(key, ')'); end > open {
				key = key[:open] + "_" + key[open+1:end] + key[end+1:]
			}
		}
		switch len(parts) {
		case 2:
		case 3:
			v *= 1024
			key += "_bytes"
		default:
			return nil, fmt.Errorf("parsing meminfo line %q: too many fields", strings.TrimSpace(line))
		}
		out = append(out, memField{Name: key, Value: v})
	}
	return out, nil
}

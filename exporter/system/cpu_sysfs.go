package system

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"
)

var (
	cpuCoreThrottlesDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "cpu", "core_throttles_total"),
		"Number of times this CPU core has been throttled.",
		[]string{"package", "core"}, nil,
	)
	cpuPackageThrottlesDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "cpu", "package_throttles_total"),
		"Number of times this CPU package has been throttled.",
		[]string{"package"}, nil,
	)
	cpuIsolatedDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "cpu", "isolated"),
		"Whether each core is isolated, information from /sys/devices/system/cpu/isolated.",
		[]string{"cpu"}, nil,
	)
)

// readIsolatedCPUs reads the kernel's isolcpus list; a kernel without the
// file has none.
func readIsolatedCPUs(sys sysfs.FS) ([]uint16, error) {
	cpus, err := sys.IsolatedCPUs()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading isolated cpus: %w", err)
	}
	return cpus, nil
}

// throttleCounts are the thermal throttle counters of sysfs, per package and
// per (package, core), keyed by the ids as sysfs spells them. CPUs sharing a
// core or package report the same counter, so each is kept once.
type throttleCounts struct {
	Package map[string]uint64
	Core    map[[2]string]uint64
}

// readThrottles reads thermal_throttle/*_count of every CPU (x86 only;
// elsewhere the directory does not exist and nothing is exported), as
// node_exporter's cpu collector does.
func readThrottles(sys sysfs.FS) (throttleCounts, error) {
	t := throttleCounts{Package: map[string]uint64{}, Core: map[[2]string]uint64{}}
	cpus, err := sys.CPUs()
	if err != nil {
		return t, fmt.Errorf("listing cpus in sysfs: %w", err)
	}
	for _, cpu := range cpus {
		// Most machines (VMs, non-x86) have no thermal_throttle directory:
		// find out first, before reading the CPU's topology.
		throttle, err := cpu.ThermalThrottle()
		if err != nil {
			continue
		}
		topology, err := cpu.Topology()
		if err != nil {
			continue
		}
		// CPUs sharing a core report the same counter; the first one wins,
		// as in node_exporter.
		key := [2]string{topology.PhysicalPackageID, topology.CoreID}
		if _, done := t.Core[key]; !done {
			t.Core[key] = throttle.CoreThrottleCount
		}
		if _, done := t.Package[key[0]]; !done {
			t.Package[key[0]] = throttle.PackageThrottleCount
		}
	}
	return t, nil
}

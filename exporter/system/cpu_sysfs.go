package system

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
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
func readIsolatedCPUs(paths Paths) ([]int, error) {
	data, err := os.ReadFile(paths.sys("devices", "system", "cpu", "isolated"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading isolated cpus: %w", err)
	}
	return parseCPUList(string(data))
}

// parseCPUList parses the kernel's cpu list format: "0-2,7,9-10"; empty
// means no CPU.
func parseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("parsing cpu list %q: %w", s, err)
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("parsing cpu list %q: %w", s, err)
			}
			if last < first {
				return nil, fmt.Errorf("parsing cpu list %q: range %s ends before it starts", s, part)
			}
		}
		for cpu := first; cpu <= last; cpu++ {
			out = append(out, cpu)
		}
	}
	return out, nil
}

// throttleCounts are the thermal throttle counters of sysfs, per package and
// per (package, core). CPUs sharing a core or package report the same
// counter, so each is read once.
type throttleCounts struct {
	Package map[uint64]uint64
	Core    map[[2]uint64]uint64
}

// readThrottles reads thermal_throttle/*_count of every CPU (x86 only;
// elsewhere the files do not exist and nothing is exported), as
// node_exporter's cpu collector does.
func readThrottles(paths Paths) (throttleCounts, error) {
	t := throttleCounts{Package: map[uint64]uint64{}, Core: map[[2]uint64]uint64{}}
	cpus, err := filepath.Glob(paths.sys("devices", "system", "cpu", "cpu[0-9]*"))
	if err != nil {
		return t, fmt.Errorf("listing cpus in sysfs: %w", err)
	}
	for _, cpu := range cpus {
		// Most machines (VMs, non-x86) have no thermal_throttle directory:
		// find out with one failed open instead of reading the topology of
		// every CPU first.
		coreCount, coreErr := readUintFile(filepath.Join(cpu, "thermal_throttle", "core_throttle_count"))
		if errors.Is(coreErr, fs.ErrNotExist) {
			if _, err := os.Stat(filepath.Join(cpu, "thermal_throttle")); errors.Is(err, fs.ErrNotExist) {
				continue
			}
		}
		pkg, err := readUintFile(filepath.Join(cpu, "topology", "physical_package_id"))
		if err != nil {
			continue
		}
		core, err := readUintFile(filepath.Join(cpu, "topology", "core_id"))
		if err != nil {
			continue
		}
		// CPUs sharing a core report the same counter; the first one wins,
		// as in node_exporter.
		if key := [2]uint64{pkg, core}; coreErr == nil {
			if _, done := t.Core[key]; !done {
				t.Core[key] = coreCount
			}
		}
		if _, done := t.Package[pkg]; !done {
			if n, err := readUintFile(filepath.Join(cpu, "thermal_throttle", "package_throttle_count")); err == nil {
				t.Package[pkg] = n
			}
		}
	}
	return t, nil
}

func readUintFile(path string) (n uint64, err error) {
	err = withFile(path, func(data []byte) (err error) {
		n, err = strconv.ParseUint(string(bytes.TrimSpace(data)), 10, 64)
		return err
	})
	return n, err
}

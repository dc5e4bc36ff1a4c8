package containers

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// errForeignCgroupNamespace means the exporter runs in a cgroup namespace of
// its own, where other processes' cgroup paths are relative ("/../..") and
// cannot be found under the cgroup mount.
var errForeignCgroupNamespace = errors.New("container cgroup is outside the exporter's cgroup namespace (run the exporter container with --cgroupns=host)")

// cgroupLocation is where a container's cgroup lives in the host's cgroup
// filesystem, for either hierarchy.
type cgroupLocation struct {
	// Path is the cgroup path as /proc/<pid>/cgroup shows it (the memory
	// controller's on v1), e.g. /docker/<id> or /system.slice/docker-<id>.scope.
	// It is the `id` label, as in cAdvisor.
	Path string
	V2   bool
	// Unified is the cgroup directory on v2.
	Unified string
	// CPU, CPUAcct and Memory are the controller directories on v1.
	CPU, CPUAcct, Memory string
}

// locateCgroup finds the cgroup of process pid from procfs/<pid>/cgroup.
// A process with v1 memory/cpu controllers is read through v1 (this also
// covers "hybrid" hosts that mount an empty cgroup2 beside them); otherwise
// through the unified v2 hierarchy mounted at cgroupfs.
func locateCgroup(procfs, cgroupfs string, pid int) (cgroupLocation, error) {
	file := filepath.Join(procfs, strconv.Itoa(pid), "cgroup")
	data, err := os.ReadFile(file)
	if err != nil {
		return cgroupLocation{}, fmt.Errorf("reading %s: %w", file, err)
	}
	v1, unified, err := parseProcCgroup(data)
	if err != nil {
		return cgroupLocation{}, fmt.Errorf("parsing %s: %w", file, err)
	}
	for _, p := range append([]string{unified}, v1["memory"].path) {
		if strings.HasPrefix(p, "/..") {
			return cgroupLocation{}, fmt.Errorf("%s: %w", file, errForeignCgroupNamespace)
		}
	}
	if mem, ok := v1["memory"]; ok {
		loc := cgroupLocation{Path: mem.path}
		for _, ctl := range []struct {
			name string
			dst  *string
		}{{"memory", &loc.Memory}, {"cpu", &loc.CPU}, {"cpuacct", &loc.CPUAcct}} {
			entry, ok := v1[ctl.name]
			if !ok {
				return cgroupLocation{}, fmt.Errorf("%s lists no %s controller", file, ctl.name)
			}
			*ctl.dst = v1Dir(cgroupfs, ctl.name, entry)
		}
		return loc, nil
	}
	if unified == "" {
		return cgroupLocation{}, fmt.Errorf("%s has neither a v1 memory controller nor a v2 entry", file)
	}
	return cgroupLocation{Path: unified, V2: true, Unified: filepath.Join(cgroupfs, unified)}, nil
}

type v1Entry struct {
	controllers string // as listed, e.g. "cpu,cpuacct"
	path        string
}

// parseProcCgroup reads the lines "hierarchy-id:controllers:path" of
// /proc/<pid>/cgroup into the v1 controllers and the v2 path ("0::/path").
func parseProcCgroup(data []byte) (map[string]v1Entry, string, error) {
	v1 := map[string]v1Entry{}
	var unified string
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		line := s.Text()
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, "", fmt.Errorf("malformed line %q", line)
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = parts[2]
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			v1[ctl] = v1Entry{controllers: parts[1], path: parts[2]}
		}
	}
	return v1, unified, s.Err()
}

// v1Dir is a controller's directory. Hosts mount co-mounted controllers as
// "cpu,cpuacct" (usually with "cpu" and "cpuacct" symlinks) or separately.
func v1Dir(cgroupfs, controller string, e v1Entry) string {
	dir := filepath.Join(cgroupfs, controller, e.path)
	if _, err := os.Stat(dir); err == nil || e.controllers == controller {
		return dir
	}
	joined := filepath.Join(cgroupfs, e.controllers, e.path)
	if _, err := os.Stat(joined); err == nil {
		return joined
	}
	return dir
}

// cgroupStats are a container's resource counters, read every scrape.
type cgroupStats struct {
	CPUUsageSeconds     float64
	CFSPeriods          uint64
	CFSThrottledPeriods uint64
	CFSThrottledSeconds float64

	MemoryUsage      uint64
	MemoryWorkingSet uint64
	MemoryRSS        uint64
	MemoryCache      uint64
	OOMKills         uint64
}

// cgroupSpec are a container's limits. They change only through an engine
// update (which emits an event), so the collector re-reads them when the
// container's metadata changes or after a while, not every scrape.
type cgroupSpec struct {
	// CPUQuota and CPUPeriod are in microseconds; CPUQuota is 0 when the
	// container has no CPU limit.
	CPUQuota  uint64
	CPUPeriod uint64
	CPUShares uint64
	// MemoryLimit is 0 when the container has no memory limit.
	MemoryLimit uint64
}

// unlimitedV1 is the smallest value treated as "no limit" on v1, where the
// kernel reports PAGE_COUNTER_MAX rounded to pages (9223372036854771712 on
// 4 KiB pages) instead of a marker.
const unlimitedV1 = uint64(1) << 62

// cgroupFiles are the files of one container's cgroup read on every
// scrape, kept open from one scrape to the next (see keptFile). Close them
// when the container stops or disappears.
type cgroupFiles struct {
	v2 bool
	// v1: cpuacct.usage, cpu.stat, memory.usage_in_bytes, memory.stat,
	// memory.oom_control. v2: cpuUsage is unused (cpu.stat has it),
	// memory.current for memUsage, memory.events for memOOM.
	cpuUsage, cpuStat, memUsage, memStat, memOOM keptFile
}

// newCgroupFiles names the files of a located cgroup; they are opened on
// first read.
func newCgroupFiles(loc cgroupLocation) *cgroupFiles {
	if loc.V2 {
		return &cgroupFiles{
			v2:       true,
			cpuUsage: newKeptFile(""),
			cpuStat:  newKeptFile(filepath.Join(loc.Unified, "cpu.stat")),
			memUsage: newKeptFile(filepath.Join(loc.Unified, "memory.current")),
			memStat:  newKeptFile(filepath.Join(loc.Unified, "memory.stat")),
			memOOM:   newKeptFile(filepath.Join(loc.Unified, "memory.events")),
		}
	}
	return &cgroupFiles{
		cpuUsage: newKeptFile(filepath.Join(loc.CPUAcct, "cpuacct.usage")),
		cpuStat:  newKeptFile(filepath.Join(loc.CPU, "cpu.stat")),
		memUsage: newKeptFile(filepath.Join(loc.Memory, "memory.usage_in_bytes")),
		memStat:  newKeptFile(filepath.Join(loc.Memory, "memory.stat")),
		memOOM:   newKeptFile(filepath.Join(loc.Memory, "memory.oom_control")),
	}
}

// close closes every open file.
func (f *cgroupFiles) close() {
	for _, k := range []*keptFile{&f.cpuUsage, &f.cpuStat, &f.memUsage, &f.memStat, &f.memOOM} {
		k.close()
	}
}

// readCgroup reads the counters of a located cgroup. Files of controllers
// that are not enabled are optional; the CPU and memory usage files are not:
// without them the container is gone.
func readCgroup(r *fileReader, f *cgroupFiles) (cgroupStats, error) {
	if f.v2 {
		return readStatsV2(r, f)
	}
	return readStatsV1(r, f)
}

// readCgroupSpec reads the limits of a located cgroup. They are read rarely
// (see cgroupSpec), so their files are not kept open.
func readCgroupSpec(r *fileReader, loc cgroupLocation) (cgroupSpec, error) {
	if loc.V2 {
		return readSpecV2(r, loc.Unified)
	}
	return readSpecV1(r, loc)
}

// readKeyValues reads a kept flat-keyed file.
func readKeyValues(r *fileReader, f *keptFile, fields ...field) error {
	data, err := r.readKept(f)
	if err != nil {
		return err
	}
	return parseKeyValues(data, f.path, fields)
}

// readKeptUint reads a kept file holding one unsigned integer.
func readKeptUint(r *fileReader, f *keptFile) (uint64, error) {
	data, err := r.readKept(f)
	if err != nil {
		return 0, err
	}
	return parseUint(data, f.path)
}

func readStatsV1(r *fileReader, f *cgroupFiles) (cgroupStats, error) {
	var st cgroupStats
	usage, err := readKeptUint(r, &f.cpuUsage)
	if err != nil {
		return st, err
	}
	st.CPUUsageSeconds = float64(usage) / 1e9
	var throttled uint64
	if err := optional(readKeyValues(r, &f.cpuStat,
		field{"nr_periods", &st.CFSPeriods}, field{"nr_throttled", &st.CFSThrottledPeriods}, field{"throttled_time", &throttled},
	)); err != nil {
		return st, err
	}
	st.CFSThrottledSeconds = float64(throttled) / 1e9

	if st.MemoryUsage, err = readKeptUint(r, &f.memUsage); err != nil {
		return st, err
	}
	// total_* include child cgroups, as usage_in_bytes does.
	var inactiveFile uint64
	if err := readKeyValues(r, &f.memStat,
		field{"total_rss", &st.MemoryRSS}, field{"total_cache", &st.MemoryCache}, field{"total_inactive_file", &inactiveFile},
	); err != nil {
		return st, err
	}
	st.MemoryWorkingSet = workingSet(st.MemoryUsage, inactiveFile)
	err = optional(readKeyValues(r, &f.memOOM, field{"oom_kill", &st.OOMKills}))
	return st, err
}

func readSpecV1(r *fileReader, loc cgroupLocation) (cgroupSpec, error) {
	var spec cgroupSpec
	quota, err := r.int(filepath.Join(loc.CPU, "cpu.cfs_quota_us"))
	switch {
	case err == nil && quota > 0:
		spec.CPUQuota = uint64(quota)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return spec, err
	}
	if spec.CPUPeriod, err = optionalUint(r, filepath.Join(loc.CPU, "cpu.cfs_period_us")); err != nil {
		return spec, err
	}
	if spec.CPUShares, err = optionalUint(r, filepath.Join(loc.CPU, "cpu.shares")); err != nil {
		return spec, err
	}
	limit, err := optionalUint(r, filepath.Join(loc.Memory, "memory.limit_in_bytes"))
	if err != nil {
		return spec, err
	}
	if limit < unlimitedV1 {
		spec.MemoryLimit = limit
	}
	return spec, nil
}

func readStatsV2(r *fileReader, f *cgroupFiles) (cgroupStats, error) {
	var st cgroupStats
	var usage, throttled uint64
	if err := readKeyValues(r, &f.cpuStat,
		field{"usage_usec", &usage},
		field{"nr_periods", &st.CFSPeriods}, field{"nr_throttled", &st.CFSThrottledPeriods}, field{"throttled_usec", &throttled},
	); err != nil {
		return st, err
	}
	st.CPUUsageSeconds = float64(usage) / 1e6
	st.CFSThrottledSeconds = float64(throttled) / 1e6

	var err error
	if st.MemoryUsage, err = readKeptUint(r, &f.memUsage); err != nil {
		return st, err
	}
	var inactiveFile uint64
	if err := readKeyValues(r, &f.memStat,
		field{"anon", &st.MemoryRSS}, field{"file", &st.MemoryCache}, field{"inactive_file", &inactiveFile},
	); err != nil {
		return st, err
	}
	st.MemoryWorkingSet = workingSet(st.MemoryUsage, inactiveFile)
	err = optional(readKeyValues(r, &f.memOOM, field{"oom_kill", &st.OOMKills}))
	return st, err
}

func readSpecV2(r *fileReader, dir string) (cgroupSpec, error) {
	var spec cgroupSpec
	path := filepath.Join(dir, "cpu.max")
	switch data, err := r.read(path); {
	case err == nil:
		if spec.CPUQuota, spec.CPUPeriod, err = parseCPUMax(data, path); err != nil {
			return spec, err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return spec, err
	}
	weight, err := optionalUint(r, filepath.Join(dir, "cpu.weight"))
	if err != nil {
		return spec, err
	}
	if weight > 0 {
		// Inverse of the runtimes' shares→weight conversion
		// (weight = 1 + (shares-2)*9999/262142), so shares read as on v1.
		spec.CPUShares = 2 + (weight-1)*262142/9999
	}
	path = filepath.Join(dir, "memory.max")
	switch data, err := r.read(path); {
	case err == nil:
		if spec.MemoryLimit, err = parseMemoryMax(data, path); err != nil {
			return spec, err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return spec, err
	}
	return spec, nil
}

// parseCPUMax parses cgroup v2 cpu.max, "quota period" in microseconds;
// quota is "max" (returned as 0) without a limit.
func parseCPUMax(data []byte, path string) (quota, period uint64, err error) {
	fields := strings.Fields(string(data))
	if len(fields) != 2 {
		return 0, 0, fmt.Errorf("parsing %s: want \"quota period\", got %q", path, strings.TrimSpace(string(data)))
	}
	if period, err = strconv.ParseUint(fields[1], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("parsing period in %s: %w", path, err)
	}
	if fields[0] != "max" {
		if quota, err = strconv.ParseUint(fields[0], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("parsing quota in %s: %w", path, err)
		}
	}
	return quota, period, nil
}

// parseMemoryMax parses cgroup v2 memory.max, bytes or "max" (returned as
// 0) without a limit.
func parseMemoryMax(data []byte, path string) (uint64, error) {
	v := strings.TrimSpace(string(data))
	if v == "max" {
		return 0, nil
	}
	limit, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing %s: %w", path, err)
	}
	return limit, nil
}

// workingSet is what the kernel cannot reclaim easily: usage minus inactive
// page cache, the figure the OOM killer and kubelet look at.
func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile > usage {
		return 0
	}
	return usage - inactiveFile
}

// optional turns "file does not exist" into success: the controller is not
// enabled for this cgroup, or the kernel is too old for the file.
func optional(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// optionalUint reads a file holding one integer, 0 when it does not exist.
func optionalUint(r *fileReader, path string) (uint64, error) {
	v, err := r.uint(path)
	return v, optional(err)
}

package containers

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The fuzz targets feed the parsers of what the exporter reads from
// outside (the Docker Engine API's answers, cgroup and procfs files, the
// kernel log) with anything, seeded from the recorded and golden fixtures
// under testdata. None may panic; a crasher found is kept as a corpus file
// under testdata/fuzz/<FuzzName>/ and replayed by every `go test`.
// Run one with: go test -run '^$' -fuzz '^FuzzInspect$' -fuzztime 60s -fuzzminimizetime 5s ./exporter/containers/
// (the JSON seeds are several KB: minimizing an input found from them takes
// longer than the default minute of fuzzing).

// addSeeds adds the files matching each pattern (relative to testdata) to
// the corpus.
func addSeeds(f *testing.F, patterns ...string) {
	f.Helper()
	n := 0
	for _, pattern := range patterns {
		files, err := filepath.Glob(filepath.Join("testdata", pattern))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
			n++
		}
	}
	if n == 0 {
		f.Fatalf("no seed files match %v", patterns)
	}
}

// FuzzInspect: an inspect answer, decoded as the cache does, made into a
// Container and handed to the OOM ledger.
func FuzzInspect(f *testing.F) {
	addSeeds(f, "api/*/inspect-*.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		var d containerInspect
		if json.Unmarshal(data, &d) != nil {
			return
		}
		ct := fromInspect(d)
		_ = ct.Running()
		l := newOOMLedger(time.Unix(0, 0))
		l.update(ct, []time.Time{ct.StartedAt.Add(-time.Second), ct.StartedAt.Add(time.Second)}, time.Now())
		l.kernel(ct.ID, ct.StartedAt, 1)
		_ = l.total(ct.ID)
	})
}

// FuzzContainerList: the list answer.
func FuzzContainerList(f *testing.F) {
	addSeeds(f, "api/*/containers.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		var list []containerSummary
		_ = json.Unmarshal(data, &list)
	})
}

// FuzzEvents: an events stream, handed to the cache as its session does.
func FuzzEvents(f *testing.F) {
	addSeeds(f, "api/*/events.jsonl")
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newMetadataCache(nil, newOOMLedger(time.Time{}), time.Minute, time.Second, slog.New(slog.DiscardHandler))
		_ = readEvents(bytes.NewReader(data), c.onEvent)
	})
}

// FuzzAPIVersion: the API-Version header of /_ping against ours.
func FuzzAPIVersion(f *testing.F) {
	for _, v := range []string{"1.41", "1.47", "1.9", "", "1.41.2", "x.y"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if a, b := compareVersions(v, maxAPIVersion), compareVersions(maxAPIVersion, v); a != -b {
			t.Errorf("compareVersions(%q, %q) = %d but the other way %d", v, maxAPIVersion, a, b)
		}
	})
}

// FuzzProcCgroup: /proc/<pid>/cgroup.
func FuzzProcCgroup(f *testing.F) {
	addSeeds(f, "*/proc/*/cgroup")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = parseProcCgroup(data)
	})
}

// FuzzKeyValues: the flat-keyed cgroup files (cpu.stat, memory.stat,
// memory.events, memory.oom_control).
func FuzzKeyValues(f *testing.F) {
	addSeeds(f, "*/sys/fs/cgroup/*/*/*.stat", "*/sys/fs/cgroup/*/*/*/*.stat", "*/sys/fs/cgroup/*/*/memory.events",
		"*/sys/fs/cgroup/*/*/*/memory.oom_control")
	f.Fuzz(func(t *testing.T, data []byte) {
		var st cgroupStats
		var x uint64
		_ = parseKeyValues(data, "fuzz", []field{
			{"usage_usec", &x}, {"nr_periods", &st.CFSPeriods}, {"nr_throttled", &st.CFSThrottledPeriods},
			{"total_rss", &st.MemoryRSS}, {"anon", &st.MemoryRSS}, {"file", &st.MemoryCache},
			{"inactive_file", &x}, {"oom_kill", &st.OOMKills},
		})
	})
}

// FuzzCgroupValues: single-value files and the v2 limits (cpu.max,
// memory.max, memory.current, cpu.weight, cpuacct.usage, …).
func FuzzCgroupValues(f *testing.F) {
	addSeeds(f, "*/sys/fs/cgroup/*/*/cpu.max", "*/sys/fs/cgroup/*/*/memory.max", "*/sys/fs/cgroup/*/*/memory.current",
		"*/sys/fs/cgroup/*/*/cpu.weight", "*/sys/fs/cgroup/*/*/*/cpuacct.usage", "*/sys/fs/cgroup/*/*/*/cpu.cfs_quota_us")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = parseCPUMax(data, "fuzz")
		_, _ = parseMemoryMax(data, "fuzz")
		_, _ = parseUint(data, "fuzz")
	})
}

// FuzzNetDev: /proc/<pid>/net/dev.
func FuzzNetDev(f *testing.F) {
	addSeeds(f, "*/proc/*/net/dev")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseNetDev(data, "fuzz")
	})
}

// FuzzKmsg: kernel log records; whatever it names must be a container id.
func FuzzKmsg(f *testing.F) {
	addSeeds(f, "kmsg/*.txt")
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, id := range oomKillsInKmsg(data) {
			if len(id) != 64 {
				t.Errorf("container id %q is not 64 hex digits", id)
			}
		}
	})
}

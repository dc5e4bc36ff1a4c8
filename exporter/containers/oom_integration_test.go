package containers

import (
	"bytes"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/enginetest"
	"github.com/berth-dev/berth/internal/testenv"
)

// oomMain is a command whose main process outgrows a 16 MiB limit (the
// shell holds the substitution's output) and is OOM-killed: the container
// exits with 137.
const oomMain = `x=$(head -c 64000000 /dev/zero | tr "\0" a); sleep 100000`

// forEachOOMSetup runs test per engine and per way the exporter learns of
// kills: with the kernel log, and for Docker also without it (the engine's
// own reports must do). Podman without the kernel log reports no OOM of a
// main process at all, so there is nothing to test there.
func forEachOOMSetup(t *testing.T, test func(t *testing.T, e enginetest.Engine, kernelLog string)) {
	for _, eng := range engines {
		setups := map[string]string{"kernel-log": "/dev/kmsg"}
		if eng.kind == "docker" {
			setups["engine-only"] = ""
		}
		for _, name := range []string{"kernel-log", "engine-only"} {
			kernelLog, ok := setups[name]
			if !ok {
				continue
			}
			t.Run(eng.kind+"/"+name, func(t *testing.T) { test(t, eng.start(t), kernelLog) })
		}
	}
}

// kernelKills reads the kernel log (/dev/kmsg) from the moment it is
// opened, for the OOM tests' ground truth: the kernel writes one summary
// per kill naming the killed task's cgroup. The exporter reads the same log
// (when told to), but these tests also check the exporter without it, and
// an exporter that counted a kill twice would be caught here.
type kernelKills struct {
	fd         int
	kills      map[string]int // by container id
	suppressed bool           // the kernel rate-limited its OOM reports
}

func followKernelKills(t *testing.T) *kernelKills {
	t.Helper()
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		testenv.Unavailable(t, "opening /dev/kmsg: %v (the OOM tests need root)", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if _, err := syscall.Seek(fd, 0, 2); err != nil { // SEEK_END
		t.Fatalf("seeking to the end of /dev/kmsg: %v", err)
	}
	return &kernelKills{fd: fd, kills: map[string]int{}}
}

// of returns the kills the kernel reported so far for a container.
func (k *kernelKills) of(t *testing.T, id string) int {
	t.Helper()
	buf := make([]byte, 16384)
	for {
		n, err := syscall.Read(k.fd, buf)
		switch {
		case err == syscall.EAGAIN:
			return k.kills[id]
		case err == syscall.EPIPE || err == syscall.EINTR:
			continue
		case err != nil:
			t.Fatalf("reading /dev/kmsg: %v", err)
		}
		for _, c := range oomKillsInKmsg(buf[:n]) {
			k.kills[c]++
		}
		if bytes.Contains(buf[:n], []byte("oom_kill_process")) && bytes.Contains(buf[:n], []byte("callbacks suppressed")) {
			k.suppressed = true
		}
	}
}

// TestIntegrationOOMRestartPolicy: a container whose main process is
// OOM-killed in every run, restarted by the engine (Coolify's default
// policy, unless-stopped). Once the kill is counted, every later scrape has
// its OOM counter, at least 1, never lower than before and never above the
// kills the kernel reported; and while the engine does not say "running"
// (Docker's restart back-off, pid 0) there are no resource series.
func TestIntegrationOOMRestartPolicy(t *testing.T) {
	forEachOOMSetup(t, testOOMRestartPolicy)
}

func testOOMRestartPolicy(t *testing.T, e enginetest.Engine, kernelLog string) {
	url, _ := startExporter(t, Config{DockerHost: e.Host(), RelistInterval: time.Hour, KernelLog: kernelLog})
	waitFor(t, url, "the exporter's first sync", func(s scrape) bool {
		return len(s.find("berth_scrape_collector_success", map[string]string{"collector": "containers"})) == 1 &&
			s.value(t, "berth_scrape_collector_success", map[string]string{"collector": "containers"}) == 1
	})
	kernel := followKernelKills(t)
	id := e.RunContainer(t, enginetest.Spec{Name: "oom-loop", Memory: 16 << 20, Restart: "unless-stopped", Cmd: []string{"/bin/sh", "-c", oomMain}})
	deadline := time.Now().Add(60 * time.Second)
	for e.InspectContainer(t, "oom-loop").RestartCount < 1 {
		if time.Now().After(deadline) {
			t.Fatal("oom-loop was not restarted within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	restarted := time.Now()
	sel := map[string]string{"name": "oom-loop"}
	// A scrape cannot know at once (a loaded engine may take over a second
	// to answer); from the first scrape that counted the kill on, every
	// scrape must.
	waitFor(t, url, "the first OOM kill counted", func(s scrape) bool {
		ms := s.find("container_oom_events_total", sel)
		return len(ms) == 1 && metricValue(ms[0]) >= 1
	})
	t.Logf("%s: first counted %s after the engine's first restart", e.Kind(), time.Since(restarted).Round(time.Millisecond))

	var (
		prev     float64
		states   = map[string]int{}
		slowest  time.Duration
		total    time.Duration
		restarts int
	)
	const scrapes = 40
	for i := range scrapes {
		started := time.Now()
		s := fetch(t, testClient, url, nil)
		took := time.Since(started)
		total += took
		slowest = max(slowest, took)
		st := e.InspectContainer(t, "oom-loop")
		restarts = st.RestartCount

		ms := s.find("container_oom_events_total", sel)
		if len(ms) != 1 {
			t.Fatalf("scrape %d (engine: %s, %d restarts): %d container_oom_events_total series, want 1", i, st.Status, st.RestartCount, len(ms))
		}
		v := metricValue(ms[0])
		switch {
		case v < 1:
			t.Errorf("scrape %d (engine: %s, %d restarts): container_oom_events_total = %v, want ≥ 1", i, st.Status, st.RestartCount, v)
		case v < prev:
			t.Errorf("scrape %d: container_oom_events_total went down from %v to %v", i, prev, v)
		case v > float64(kernel.of(t, id)) && !kernel.suppressed:
			t.Errorf("scrape %d: container_oom_events_total = %v, more than the %d kills the kernel reported: counted twice", i, v, kernel.of(t, id))
		}
		prev = v

		info := s.find("berth_container_info", sel)
		if len(info) != 1 {
			t.Fatalf("scrape %d: %d info series", i, len(info))
		}
		state := labelOf(info[0], "state")
		states[state]++
		if state != "running" && len(s.find("container_memory_usage_bytes", sel)) > 0 {
			t.Errorf("scrape %d: state %q with resource series", i, state)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%s: %d scrapes: container_oom_events_total reached %v; the kernel reported %d kills (rate-limited: %v), the engine %d restarts; states seen %v; scrape took %s on average, %s at most",
		e.Kind(), scrapes, prev, kernel.of(t, id), kernel.suppressed, restarts, states, (total / scrapes).Round(time.Microsecond), slowest.Round(time.Microsecond))
}

// TestIntegrationOOMNoRestart: a container without a restart policy whose
// main process is OOM-killed keeps its series until it is removed, counting
// the kills the kernel reported (one, unless the OOM killer also took a
// process of the pipeline): exactly with the kernel log, one per run
// without it.
func TestIntegrationOOMNoRestart(t *testing.T) {
	forEachOOMSetup(t, testOOMNoRestart)
}

func testOOMNoRestart(t *testing.T, e enginetest.Engine, kernelLog string) {
	url, _ := startExporter(t, Config{DockerHost: e.Host(), RelistInterval: time.Hour, KernelLog: kernelLog})
	kernel := followKernelKills(t)
	id := e.RunContainer(t, enginetest.Spec{Name: "oom-once", Memory: 16 << 20, Cmd: []string{"/bin/sh", "-c", oomMain}})
	if code := e.WaitContainer(t, "oom-once"); code != 137 {
		t.Fatalf("oom-once exited with %d, want 137 (SIGKILL by the OOM killer)", code)
	}
	// Not asserted: Podman 4 always says false, and dockerd 20.10 says
	// false too when containerd's OOM event comes after the exit.
	st := e.InspectContainer(t, "oom-once")
	kills := kernel.of(t, id)
	t.Logf("%s inspect oom-once: status %s, exit code %d, OOMKilled %v; the kernel reported %d kills", e.Kind(), st.Status, st.ExitCode, st.OOMKilled, kills)
	want := 1.0
	if kernelLog != "" {
		want = float64(kills)
	}

	sel := map[string]string{"name": "oom-once"}
	for i := range 5 {
		s := fetch(t, testClient, url, nil)
		if n := len(s.find("berth_container_info", map[string]string{"name": "oom-once", "state": "exited"})); n != 1 {
			t.Fatalf("scrape %d: %d info series of the exited container", i, n)
		}
		if ms := s.find("container_oom_events_total", sel); len(ms) != 1 || metricValue(ms[0]) != want {
			t.Errorf("scrape %d: container_oom_events_total %v, want one series at %v", i, ms, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
	e.RemoveContainer(t, "oom-once")
	s := fetch(t, testClient, url, nil)
	if names := familiesOf(s, sel); len(names) != 0 {
		t.Errorf("after removal, series of oom-once remain in %v", names)
	}
}

// familiesOf lists the families with a series matching sel.
func familiesOf(s scrape, sel map[string]string) []string {
	var names []string
	for name := range s {
		if len(s.find(name, sel)) > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

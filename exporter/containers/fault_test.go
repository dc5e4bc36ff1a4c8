package containers

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestDockerSocketMissing: no engine at all. The container collector
// reports failure; everything else is still served.
func TestDockerSocketMissing(t *testing.T) {
	url, _ := startExporter(t, Config{DockerHost: "unix://" + filepath.Join(t.TempDir(), "missing.sock")})
	s := fetch(t, testClient, url, nil)
	if v := s.value(t, "berth_scrape_collector_success", map[string]string{"collector": "containers"}); v != 0 {
		t.Errorf("containers success = %v, want 0", v)
	}
	if v := s.value(t, "berth_scrape_collector_success", map[string]string{"collector": "probe"}); v != 1 {
		t.Errorf("probe success = %v, want 1", v)
	}
	if v := s.value(t, "berth_test_probe", nil); v != 1 {
		t.Errorf("the other collector's metric is missing")
	}
	for name := range s {
		if name != "berth_scrape_collector_success" && name != "berth_scrape_collector_duration_seconds" && name != "berth_test_probe" {
			t.Errorf("unexpected family %s without an engine", name)
		}
	}
}

// hangingEngine accepts connections and never answers, like a wedged
// dockerd.
func hangingEngine(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-hang-")
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		os.RemoveAll(dir)
	})
	return "unix://" + socket
}

// TestDockerAPIHangs: the engine accepts but never answers. The scrape
// still completes within the deadline Prometheus announced (the client
// gives up exactly then, as Prometheus would), the container collector
// fails and the others answer.
func TestDockerAPIHangs(t *testing.T) {
	// APIWait longer than the scrape deadline: the deadline must win.
	url, _ := startExporter(t, Config{DockerHost: hangingEngine(t), APIWait: time.Minute, RequestTimeout: time.Minute})
	const timeout = 2 * time.Second
	client := &http.Client{Timeout: timeout}
	header := http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"2"}}
	for i := 0; i < 2; i++ { // the first scrape and one while the cache is still stuck
		s := fetch(t, client, url, header)
		if v := s.value(t, "berth_scrape_collector_success", map[string]string{"collector": "containers"}); v != 0 {
			t.Errorf("scrape %d: containers success = %v, want 0", i, v)
		}
		if v := s.value(t, "berth_test_probe", nil); v != 1 {
			t.Errorf("scrape %d: the other collector's metric is missing", i)
		}
	}
}

// TestDockerAPIHangsAfterSync: once metadata is loaded, a wedged engine
// does not slow scrapes down: they read the cache, until it is too old to
// be trusted.
func TestDockerAPIHangsAfterSync(t *testing.T) {
	engine := &fakeEngine{containers: fixtureContainers()}
	gate := &hangSwitch{next: engine}
	url, _ := startExporter(t, Config{
		DockerHost: serveUnix(t, gate), ProcFS: "testdata/cgroupv2/proc", CgroupFS: "testdata/cgroupv2/sys/fs/cgroup",
		RelistInterval: 200 * time.Millisecond, RequestTimeout: time.Hour,
	})
	client := &http.Client{Timeout: 2 * time.Second}
	header := http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"2"}}
	s := fetch(t, client, url, header)
	if v := s.value(t, "berth_scrape_collector_success", map[string]string{"collector": "containers"}); v != 1 {
		t.Fatalf("containers success = %v before the hang, want 1", v)
	}
	gate.hang()
	// Metadata older than three relist intervals is refused, not served.
	deadline := time.Now().Add(30 * time.Second)
	for {
		s = fetch(t, client, url, header)
		if s.value(t, "berth_scrape_collector_success", map[string]string{"collector": "containers"}) == 0 {
			break
		}
		if len(s.find("berth_container_info", nil)) != 3 {
			t.Fatalf("while the cache is fresh every container is served")
		}
		if time.Now().After(deadline) {
			t.Fatal("stale metadata was still served 30s after the engine hung")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(s.find("berth_container_info", nil)); n != 0 {
		t.Errorf("%d container series served from stale metadata", n)
	}
}

// hangSwitch passes requests through until hang is called, then holds every
// request until the client gives up.
type hangSwitch struct {
	next    http.Handler
	mu      sync.Mutex
	hanging bool
}

func (h *hangSwitch) hang() {
	h.mu.Lock()
	h.hanging = true
	h.mu.Unlock()
}

func (h *hangSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	hanging := h.hanging
	h.mu.Unlock()
	if hanging {
		<-r.Context().Done()
		return
	}
	h.next.ServeHTTP(w, r)
}

// TestEventsStreamDrops: an events stream that keeps ending (a proxy with an
// idle timeout, a daemon restart) makes the cache reconnect; while the API
// answers, scrapes keep succeeding.
func TestEventsStreamDrops(t *testing.T) {
	engine := &fakeEngine{containers: fixtureContainers(), dropEvents: true}
	url, _ := startExporter(t, Config{
		DockerHost: serveUnix(t, engine), ProcFS: "testdata/cgroupv2/proc", CgroupFS: "testdata/cgroupv2/sys/fs/cgroup",
	})
	for i := 0; ; i++ {
		s := fetch(t, testClient, url, nil)
		if v := s.value(t, "berth_scrape_collector_success", map[string]string{"collector": "containers"}); v != 1 {
			t.Fatalf("scrape %d: containers success = %v while the API answers", i, v)
		}
		engine.mu.Lock()
		pings := engine.pings
		engine.mu.Unlock()
		if pings >= 3 {
			break // reconnected at least twice, scraping throughout
		}
		time.Sleep(100 * time.Millisecond)
	}
}

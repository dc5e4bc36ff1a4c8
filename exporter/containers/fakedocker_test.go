package containers

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeEngine is a canned Docker Engine API on a unix socket, for fixture
// and fault tests that need exact control of what the daemon says (the live
// tests use a real engine). It answers /_ping, /containers/json,
// /containers/{id}/json and holds /events open.
type fakeEngine struct {
	mu         sync.Mutex
	containers []fakeContainer
	inspects   int
	// dropEvents makes /events end at once, like a proxy cutting idle
	// streams; pings counts version negotiations (one per reconnect).
	dropEvents bool
	pings      int
}

type fakeContainer struct {
	ID, Name, Image, State, StartedAt string
	// InspectState, when set, is the state inspect reports instead of
	// State (the list's): the engine changed its mind between the two.
	InspectState                string
	FinishedAt                  string
	Labels                      map[string]string
	Pid, ExitCode, RestartCount int
}

func (f *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if strings.HasPrefix(path, "/v1.") {
		path = path[strings.Index(path[1:], "/")+1:]
	}
	f.mu.Lock()
	containers := append([]fakeContainer(nil), f.containers...)
	f.mu.Unlock()
	switch {
	case path == "/_ping":
		f.mu.Lock()
		f.pings++
		f.mu.Unlock()
		w.Header().Set("API-Version", "1.41")
		_, _ = io.WriteString(w, "OK")
	case path == "/containers/json":
		var out []map[string]any
		for _, c := range containers {
			out = append(out, map[string]any{"Id": c.ID, "Names": []string{"/" + c.Name}, "Image": c.Image, "State": c.State, "Labels": c.Labels})
		}
		_ = json.NewEncoder(w).Encode(out)
	case path == "/events":
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		f.mu.Lock()
		drop := f.dropEvents
		f.mu.Unlock()
		if !drop {
			<-r.Context().Done()
		}
	case strings.HasPrefix(path, "/containers/") && strings.HasSuffix(path, "/json"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/containers/"), "/json")
		for _, c := range containers {
			if c.ID != id {
				continue
			}
			f.mu.Lock()
			f.inspects++
			f.mu.Unlock()
			var d containerInspect
			d.ID, d.Name, d.RestartCount = c.ID, "/"+c.Name, c.RestartCount
			state := c.State
			if c.InspectState != "" {
				state = c.InspectState
			}
			d.State.Status, d.State.Running, d.State.Pid, d.State.ExitCode, d.State.StartedAt = state, state == "running", c.Pid, c.ExitCode, c.StartedAt
			d.Config.Image, d.Config.Labels = c.Image, c.Labels
			d.State.FinishedAt = c.FinishedAt
			d.HostConfig.NetworkMode = "bridge"
			_ = json.NewEncoder(w).Encode(d)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"message":"no such container"}`)
	default:
		http.NotFound(w, r)
	}
}

// serveUnix serves h on a fresh unix socket and returns its Docker host URL.
func serveUnix(t testing.TB, h http.Handler) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-fake-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = srv.Close()
	})
	return "unix://" + socket
}

// fixtureContainers are the fake engine's containers for the fixture trees:
// pids 4242 and 4343 have cgroups in testdata, the third has exited.
func fixtureContainers() []fakeContainer {
	return []fakeContainer{
		{
			ID: fixtureID1, Name: "web-x8k2m1", Image: "registry.example.com/acme/web:3.1", State: "running", Pid: 4242,
			StartedAt: "2026-11-20T10:00:00.5Z", RestartCount: 2,
			Labels: map[string]string{
				"coolify.managed": "true", "coolify.type": "application", "coolify.applicationId": "17",
				"coolify.projectName": "shop", "coolify.environmentName": "production",
				// Must never be exported: not on the allow-list.
				"traefik.http.middlewares.auth.basicauth.users": "admin:$apr1$secret",
			},
		},
		{
			ID: fixtureID2, Name: "k9f2h7d3s1a8q4w6e5r0t2y7", Image: "ghcr.io/coollabsio/coolify-helper:1.0.8", State: "running", Pid: 4343,
			StartedAt: "2026-11-20T10:05:00Z",
		},
		{
			ID: "0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e", Name: "backup-of-db-1", Image: "postgres:16",
			State: "exited", ExitCode: 3, Labels: map[string]string{"coolify.managed": "true"},
		},
	}
}

// fixtureCollector is a collector on a fixture tree (testdata/<tree>)
// answered by engine, closed when the test ends.
func fixtureCollector(t testing.TB, engine http.Handler, tree string) *Collector {
	t.Helper()
	c, err := New(Config{
		DockerHost: serveUnix(t, engine), LabelMap: DefaultLabelMap,
		ProcFS: filepath.Join("testdata", tree, "proc"), CgroupFS: filepath.Join("testdata", tree, "sys/fs/cgroup"),
		APIWait: 5 * time.Second,
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// hostContainers are the fake engine's containers for testdata/cgroupv2-host:
// the real host's container (pid 312) as a Coolify service.
func hostContainers() []fakeContainer {
	return []fakeContainer{{
		ID: hostID, Name: "plausible-abc123", Image: "ghcr.io/plausible/community-edition:v2", State: "running", Pid: 312,
		StartedAt: "2022-05-18T18:40:00Z",
		Labels:    map[string]string{"coolify.managed": "true", "coolify.type": "service", "coolify.serviceId": "3"},
	}}
}

// gather runs one Update and returns the metrics as a registry would.
func gather(t testing.TB, c *Collector) (string, error) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	var updateErr error
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		updateErr = c.Update(ctx, ch)
	}))
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	return encodeText(t, families), updateErr
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

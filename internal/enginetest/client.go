package enginetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// apiVersion is spoken by both test engines: dockerd 20.10's newest and
// Podman 4's compatible API.
const apiVersion = "v1.41"

// Client does the tests' container operations through the Docker Engine API
// of one engine. The engines embed it; its methods fail the test on error.
type Client struct {
	http *http.Client
}

// NewClient talks to the API on a unix socket.
func NewClient(socket string) *Client {
	return &Client{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}}
}

// HTTP is the client's HTTP client (any URL host reaches the socket).
func (c *Client) HTTP() *http.Client { return c.http }

// call sends one request and decodes a JSON answer into out (when not
// nil). Every call has a deadline: a hung engine fails the test instead of
// hanging it.
func (c *Client) call(method, path string, query url.Values, body io.Reader, contentType string, out any, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	u := "http://engine/" + apiVersion + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("building %s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding %q: %w", method, path, data, err)
		}
	}
	return nil
}

func (c *Client) must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("engine api: %v", err)
	}
}

// RunContainer creates and starts a container and returns its id.
func (c *Client) RunContainer(t testing.TB, s Spec) string {
	t.Helper()
	image := s.Image
	if image == "" {
		image = Image
	}
	restart := map[string]any{}
	if s.Restart != "" {
		name, count, _ := strings.Cut(s.Restart, ":")
		restart["Name"] = name
		if count != "" {
			n, err := strconv.Atoi(count)
			if err != nil {
				t.Fatalf("enginetest: restart policy %q: %v", s.Restart, err)
			}
			restart["MaximumRetryCount"] = n
		}
	}
	host := map[string]any{"NetworkMode": "none", "RestartPolicy": restart}
	if s.Memory > 0 {
		host["Memory"], host["MemorySwap"] = s.Memory, s.Memory
	}
	if s.CPUs > 0 {
		host["NanoCpus"] = int64(s.CPUs * 1e9)
	}
	// A short stop timeout: sleep and yes as a container's first process
	// ignore SIGTERM, and an engine stopping (dockerd stops its containers
	// as it exits) would wait out the default 10 s for each.
	body, err := json.Marshal(map[string]any{"Image": image, "Cmd": s.Cmd, "Labels": s.Labels, "StopTimeout": 1, "HostConfig": host})
	if err != nil {
		t.Fatalf("enginetest: encoding container %s: %v", s.Name, err)
	}
	var created struct{ ID string }
	c.must(t, c.call(http.MethodPost, "/containers/create", url.Values{"name": {s.Name}}, bytes.NewReader(body), "application/json", &created, time.Minute))
	c.must(t, c.call(http.MethodPost, "/containers/"+created.ID+"/start", nil, nil, "", nil, time.Minute))
	return created.ID
}

// InspectContainer returns the engine's view of a container.
func (c *Client) InspectContainer(t testing.TB, name string) State {
	t.Helper()
	var d struct {
		ID           string `json:"Id"`
		RestartCount int
		State        struct {
			Status    string
			Pid       int
			ExitCode  int
			OOMKilled bool
			StartedAt time.Time
		}
	}
	c.must(t, c.call(http.MethodGet, "/containers/"+url.PathEscape(name)+"/json", nil, nil, "", &d, time.Minute))
	return State{ID: d.ID, Status: d.State.Status, Pid: d.State.Pid, ExitCode: d.State.ExitCode,
		OOMKilled: d.State.OOMKilled, RestartCount: d.RestartCount, StartedAt: d.State.StartedAt}
}

// StopContainer stops a container at once (SIGKILL, no grace period).
func (c *Client) StopContainer(t testing.TB, name string) {
	t.Helper()
	c.must(t, c.call(http.MethodPost, "/containers/"+url.PathEscape(name)+"/stop", url.Values{"t": {"0"}}, nil, "", nil, time.Minute))
}

// RemoveContainer force-removes a container at once.
func (c *Client) RemoveContainer(t testing.TB, name string) {
	t.Helper()
	c.must(t, c.removeContainer(name))
}

func (c *Client) removeContainer(name string) error {
	return c.call(http.MethodDelete, "/containers/"+url.PathEscape(name), url.Values{"force": {"1"}, "v": {"1"}}, nil, "", nil, time.Minute)
}

// WaitContainer waits for a container to stop and returns its exit code.
func (c *Client) WaitContainer(t testing.TB, name string) int {
	t.Helper()
	var out struct{ StatusCode int }
	c.must(t, c.call(http.MethodPost, "/containers/"+url.PathEscape(name)+"/wait", nil, nil, "", &out, 2*time.Minute))
	return out.StatusCode
}

// TagImage gives image src the name dst ("repo:tag").
func (c *Client) TagImage(t testing.TB, src, dst string) {
	t.Helper()
	i := strings.LastIndex(dst, ":")
	if i < 0 || strings.Contains(dst[i:], "/") {
		t.Fatalf("enginetest: image name %q has no tag", dst)
	}
	c.must(t, c.call(http.MethodPost, "/images/"+src+"/tag", url.Values{"repo": {dst[:i]}, "tag": {dst[i+1:]}}, nil, "", nil, time.Minute))
}

// ContainerIDs lists every container, running or not.
func (c *Client) ContainerIDs(t testing.TB) []string {
	t.Helper()
	ids, err := c.containerIDs()
	c.must(t, err)
	return ids
}

func (c *Client) containerIDs() ([]string, error) {
	var list []struct {
		ID string `json:"Id"`
	}
	if err := c.call(http.MethodGet, "/containers/json", url.Values{"all": {"1"}}, nil, "", &list, time.Minute); err != nil {
		return nil, err
	}
	ids := make([]string, len(list))
	for i, l := range list {
		ids[i] = l.ID
	}
	return ids, nil
}

// RemoveAll force-removes every container, for cleanups; it returns the
// first error.
func (c *Client) RemoveAll() error {
	ids, err := c.containerIDs()
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := c.removeContainer(id); err != nil {
			return err
		}
	}
	return nil
}

// ImportImage imports a root filesystem archive as image name ("repo:tag")
// through the API (`docker import`), offline.
func (c *Client) ImportImage(rootfs []byte, name string) error {
	i := strings.LastIndex(name, ":")
	if i < 0 {
		return fmt.Errorf("importing image %q: no tag", name)
	}
	// The answer is a stream of JSON progress messages; a failure is one
	// with an error field, still under status 200.
	var raw json.RawMessage
	query := url.Values{"fromSrc": {"-"}, "repo": {name[:i]}, "tag": {name[i+1:]}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://engine/"+apiVersion+"/images/create?"+query.Encode(), bytes.NewReader(rootfs))
	if err != nil {
		return fmt.Errorf("importing image %s: %w", name, err)
	}
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("importing image %s: %w", name, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		if err := dec.Decode(&raw); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("importing image %s: reading answer: %w", name, err)
		}
		var msg struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &msg) == nil && msg.Error != "" {
			return fmt.Errorf("importing image %s: %s", name, msg.Error)
		}
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("importing image %s: %s", name, resp.Status)
	}
	return nil
}

// WaitForAPI polls the engine's /_ping until it answers 200, failing the
// test (with the engine's output) if the engine exits first or does not
// answer within timeout.
func (c *Client) WaitForAPI(t testing.TB, what string, timeout time.Duration, exited <-chan struct{}, output func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := c.call(http.MethodGet, "/_ping", nil, nil, "", nil, time.Second)
		if err == nil {
			return
		}
		select {
		case <-exited:
			t.Fatalf("enginetest: %s exited:\n%s", what, output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("enginetest: %s did not answer within %s (last error: %v)\n%s", what, timeout, err, output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

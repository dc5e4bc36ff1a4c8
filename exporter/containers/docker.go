package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxAPIVersion is the newest Docker Engine API version this client speaks.
// Every field it reads exists unchanged from 1.24 on; negotiating down to the
// daemon's version keeps old daemons (and Podman's 1.41) working, and capping
// keeps new daemons from changing answers under us.
const maxAPIVersion = "1.47"

// dockerClient talks to the Docker Engine API (or Podman's compatible one)
// over net/http. Each call is bounded by the context it is given.
type dockerClient struct {
	http    *http.Client
	base    string // scheme://host without version
	version string // negotiated API version, e.g. "1.41"
}

// newDockerClient parses a Docker host (unix:///path, tcp://host:port or
// http://host:port) as DOCKER_HOST does.
func newDockerClient(host string) (*dockerClient, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("parsing docker host %q: %w", host, err)
	}
	transport := &http.Transport{
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0, // bounded by each request's context instead
	}
	c := &dockerClient{http: &http.Client{Transport: transport}}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			return nil, fmt.Errorf("docker host %q: unix socket path is empty", host)
		}
		transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://docker"
	case "tcp", "http":
		if u.Host == "" {
			return nil, fmt.Errorf("docker host %q: missing host:port", host)
		}
		c.base = "http://" + u.Host
	default:
		return nil, fmt.Errorf("docker host %q: unsupported scheme %q (want unix, tcp or http)", host, u.Scheme)
	}
	return c, nil
}

// apiError is a non-2xx answer from the engine.
type apiError struct {
	status  int
	message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("docker api answered %d: %s", e.status, e.message)
}

// isNotFound reports whether err is the engine saying the object is gone.
// Docker answers 404; Podman 4 answers 500 "no such container" for a
// container removed between a list and an inspect, which is the same news.
func isNotFound(err error) bool {
	var ae *apiError
	if !errors.As(err, &ae) {
		return false
	}
	return ae.status == http.StatusNotFound ||
		(ae.status == http.StatusInternalServerError && strings.Contains(strings.ToLower(ae.message), "no such container"))
}

func (c *dockerClient) get(ctx context.Context, path string, query url.Values) (*http.Response, error) {
	u := c.base
	if c.version != "" {
		u += "/v" + c.version
	}
	u += path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("building request for %s: %w", path, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("docker api %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var msg struct {
			Message string `json:"message"`
		}
		text := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &msg) == nil && msg.Message != "" {
			text = msg.Message
		}
		return nil, fmt.Errorf("docker api %s: %w", path, &apiError{status: resp.StatusCode, message: text})
	}
	return resp, nil
}

func (c *dockerClient) getJSON(ctx context.Context, path string, query url.Values, into any) error {
	resp, err := c.get(ctx, path, query)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("decoding docker api %s: %w", path, err)
	}
	return nil
}

// negotiate picks the API version: the daemon's own, capped at the newest
// this client knows. It reads the API-Version header of /_ping, which is
// cheaper than /version (Podman runs conmon and the OCI runtime to answer
// that one).
func (c *dockerClient) negotiate(ctx context.Context) error {
	saved := c.version
	c.version = ""
	resp, err := c.get(ctx, "/_ping", nil)
	if err != nil {
		c.version = saved
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	switch v := resp.Header.Get("API-Version"); {
	case v == "":
		// Daemons older than 1.24 are not supported anyway; try ours.
		c.version = maxAPIVersion
	case compareVersions(v, maxAPIVersion) < 0:
		c.version = v
	default:
		c.version = maxAPIVersion
	}
	return nil
}

// compareVersions compares dotted API versions numerically ("1.9" < "1.41").
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// containerSummary is one entry of GET /containers/json.
type containerSummary struct {
	ID    string `json:"Id"`
	State string `json:"State"`
}

// list returns every container, running or not.
func (c *dockerClient) list(ctx context.Context) ([]containerSummary, error) {
	var out []containerSummary
	if err := c.getJSON(ctx, "/containers/json", url.Values{"all": {"1"}}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// containerInspect holds the fields of GET /containers/{id}/json Berth uses.
type containerInspect struct {
	ID           string `json:"Id"`
	Name         string `json:"Name"`
	RestartCount int    `json:"RestartCount"`
	State        struct {
		Status   string `json:"Status"`
		Running  bool   `json:"Running"`
		Pid      int    `json:"Pid"`
		ExitCode int    `json:"ExitCode"`
		// OOMKilled is Docker's word that the last run that ended had an
		// OOM kill (any of its processes); Podman 4 always says false.
		OOMKilled  bool   `json:"OOMKilled"`
		StartedAt  string `json:"StartedAt"`
		FinishedAt string `json:"FinishedAt"`
	} `json:"State"`
	Config struct {
		Image  string            `json:"Image"`
		Labels map[string]string `json:"Labels"`
	} `json:"Config"`
	HostConfig struct {
		NetworkMode string `json:"NetworkMode"`
	} `json:"HostConfig"`
}

// inspect returns one container's details.
func (c *dockerClient) inspect(ctx context.Context, id string) (containerInspect, error) {
	var out containerInspect
	err := c.getJSON(ctx, "/containers/"+url.PathEscape(id)+"/json", nil, &out)
	return out, err
}

// event is one message of the GET /events stream.
type event struct {
	Type   string `json:"Type"`
	Action string `json:"Action"`
	Actor  struct {
		ID string `json:"ID"`
	} `json:"Actor"`
	Time     int64 `json:"time"`
	TimeNano int64 `json:"timeNano"`
}

// at is when the engine logged the event.
func (e event) at() time.Time {
	if e.TimeNano != 0 {
		return time.Unix(0, e.TimeNano)
	}
	return time.Unix(e.Time, 0)
}

// events streams container events to fn until ctx ends or the stream
// breaks; it returns the error that ended it.
func (c *dockerClient) events(ctx context.Context, fn func(event)) error {
	filters := `{"type":["container"]}`
	resp, err := c.get(ctx, "/events", url.Values{"filters": {filters}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	err = readEvents(resp.Body, fn)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("reading docker events: %w", err)
}

// readEvents decodes a stream of events (one JSON object after another)
// and hands the container events to fn, until the stream ends or does not
// decode.
func readEvents(r io.Reader, fn func(event)) error {
	dec := json.NewDecoder(r)
	for {
		var ev event
		if err := dec.Decode(&ev); err != nil {
			return err
		}
		if ev.Type == "container" {
			fn(ev)
		}
	}
}

package fleetsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Fleet is a running simulated fleet: one HTTP listener per server.
type Fleet struct {
	servers []*Server
	byName  map[string]*Server
}

// ListenConfig says where the simulated servers listen.
type ListenConfig struct {
	// Host defaults to 127.0.0.1.
	Host string
	// BasePort is the first server's port, the next ones follow; 0 picks
	// free ports.
	BasePort int
}

// Start validates the spec and starts one scrape target per server. The
// fleet stops when ctx is done or Close is called.
func Start(ctx context.Context, spec Spec, listen ListenConfig) (*Fleet, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("fleet spec: %w", err)
	}
	host := listen.Host
	if host == "" {
		host = "127.0.0.1"
	}
	if listen.BasePort < 0 || listen.BasePort+len(spec.Servers) > 65536 {
		return nil, fmt.Errorf("base_port: %d leaves no room for %d servers", listen.BasePort, len(spec.Servers))
	}
	f := &Fleet{byName: make(map[string]*Server, len(spec.Servers))}
	now := time.Now()
	for i, srvSpec := range spec.Servers {
		port := 0
		if listen.BasePort > 0 {
			port = listen.BasePort + i
		}
		var lc net.ListenConfig
		l, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("listening for simulated server %s: %w", srvSpec.Name, err)
		}
		s := newServer(spec.Seed, srvSpec, now)
		s.listener = l
		s.http = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = s.http.Serve(l) }()
		f.servers = append(f.servers, s)
		f.byName[srvSpec.Name] = s
	}
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	return f, nil
}

// Close stops every simulated server.
func (f *Fleet) Close() {
	for _, s := range f.servers {
		_ = s.http.Close()
	}
}

// Servers lists the simulated servers in spec order.
func (f *Fleet) Servers() []*Server { return f.servers }

// Server returns the simulated server with that name, or nil.
func (f *Fleet) Server(name string) *Server { return f.byName[name] }

// Targets are the host:port scrape addresses in spec order.
func (f *Fleet) Targets() []string {
	t := make([]string, len(f.servers))
	for i, s := range f.servers {
		t[i] = s.Address()
	}
	return t
}

// fileSDGroup is one entry of Prometheus's file_sd format.
type fileSDGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// WriteFileSD writes the targets in Prometheus's file_sd JSON format,
// atomically (Prometheus watches the file and may read it at any time).
func (f *Fleet) WriteFileSD(path string) error {
	data, err := json.MarshalIndent([]fileSDGroup{{Targets: f.Targets()}}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding file_sd: %w", err)
	}
	return writeAtomic(path, append(data, '\n'))
}

// ScrapeConfig returns a Prometheus configuration (global section and one
// scrape job named jobName) that scrapes the fleet's targets from the file_sd
// file at fileSDPath. Rule files are added by the caller when needed.
func ScrapeConfig(jobName, fileSDPath string, interval time.Duration, ruleFiles ...string) string {
	cfg := fmt.Sprintf("global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n",
		interval, min(interval, 10*time.Second), interval)
	if len(ruleFiles) > 0 {
		cfg += "rule_files:\n"
		for _, f := range ruleFiles {
			cfg += "  - " + strconv.Quote(f) + "\n"
		}
	}
	cfg += fmt.Sprintf("scrape_configs:\n  - job_name: %s\n    file_sd_configs:\n      - files: [%s]\n        refresh_interval: %s\n",
		strconv.Quote(jobName), strconv.Quote(fileSDPath), max(interval, time.Second))
	return cfg
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

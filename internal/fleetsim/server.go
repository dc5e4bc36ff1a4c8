package fleetsim

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cpuModes are node_exporter's modes; busy time is split between user and
// system, the rest is idle (iowait and steal stay flat so utilisation is
// exactly the configured busy share on average).
var cpuModes = []string{"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"}

// variationPeriod is how long one full swing of the simulated load takes.
const variationPeriod = 5 * time.Minute

// Server is one simulated berth-exporter.
type Server struct {
	listener net.Listener
	http     *http.Server

	mu        sync.Mutex
	spec      ServerSpec
	answering bool
	phase     float64
	bootTime  float64
	rxRate    float64
	txRate    float64
	last      time.Time
	cpu       [][]float64 // [core][mode] seconds
	rx, tx    float64
	rxPackets float64
	txPackets float64
	loBytes   float64
	rng       *rand.Rand         // seeded per server: ids of containers added later
	ids       map[string]string  // container name → 64-hex id
	ctrCPU    map[string]float64 // container name → cpu seconds
	started   map[string]float64 // container name → start time
}

func newServer(seed uint64, spec ServerSpec, now time.Time) *Server {
	h := fnv.New64a()
	h.Write([]byte(spec.Name))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	uptime := float64(24*3600) * (1 + 29*rng.Float64())
	s := &Server{
		spec:      spec,
		answering: true,
		phase:     2 * math.Pi * rng.Float64(),
		bootTime:  float64(now.Unix()) - math.Floor(uptime),
		rxRate:    5e4 + 5e6*rng.Float64(),
		txRate:    5e4 + 5e6*rng.Float64(),
		last:      now,
		rng:       rng,
		ids:       map[string]string{},
		ctrCPU:    map[string]float64{},
		started:   map[string]float64{},
	}
	s.rx = s.rxRate * uptime
	s.tx = s.txRate * uptime
	s.rxPackets = s.rx / 900
	s.txPackets = s.tx / 900
	s.loBytes = 1e4 * uptime
	s.resizeCPU(uptime)
	s.syncContainers(now)
	return s
}

// resizeCPU makes room for the spec's cores, seeding new cores with plausible
// counters for the given uptime.
func (s *Server) resizeCPU(uptime float64) {
	for len(s.cpu) < s.spec.Cores {
		modes := make([]float64, len(cpuModes))
		busy := s.spec.CPUBusy
		for m, mode := range cpuModes {
			switch mode {
			case "idle":
				modes[m] = uptime * (1 - busy)
			case "user":
				modes[m] = uptime * busy * 0.7
			case "system":
				modes[m] = uptime * busy * 0.3
			}
		}
		s.cpu = append(s.cpu, modes)
	}
	s.cpu = s.cpu[:s.spec.Cores]
}

// syncContainers gives every container of the spec an id and counters.
func (s *Server) syncContainers(now time.Time) {
	rng := s.rng
	for _, c := range s.spec.Containers {
		if _, ok := s.ids[c.Name]; ok {
			continue
		}
		const hex = "0123456789abcdef"
		id := make([]byte, 64)
		for i := range id {
			id[i] = hex[rng.IntN(16)]
		}
		s.ids[c.Name] = string(id)
		age := 3600 * (1 + 100*rng.Float64())
		s.started[c.Name] = math.Floor(float64(now.Unix()) - age)
		s.ctrCPU[c.Name] = c.CPUUsageCores * age
	}
}

// wave is the load multiplier at t: a slow swing of ±15 % around 1.
func (s *Server) wave(t time.Time, offset float64) float64 {
	x := float64(t.UnixNano())/float64(variationPeriod) + s.phase + offset
	return 1 + 0.15*math.Sin(2*math.Pi*x)
}

func clamp01(v float64) float64 { return math.Max(0, math.Min(1, v)) }

// advance integrates the counters from the last scrape to now.
func (s *Server) advance(now time.Time) {
	dt := now.Sub(s.last).Seconds()
	if dt <= 0 {
		return
	}
	s.last = now
	for core, modes := range s.cpu {
		busy := clamp01(s.spec.CPUBusy * s.wave(now, float64(core)/10))
		for m, mode := range cpuModes {
			switch mode {
			case "idle":
				modes[m] += dt * (1 - busy)
			case "user":
				modes[m] += dt * busy * 0.7
			case "system":
				modes[m] += dt * busy * 0.3
			}
		}
	}
	w := s.wave(now, 0.25)
	s.rx += dt * s.rxRate * w
	s.tx += dt * s.txRate * w
	s.rxPackets += dt * s.rxRate * w / 900
	s.txPackets += dt * s.txRate * w / 900
	s.loBytes += dt * 1e4
	for _, c := range s.spec.Containers {
		if c.running() {
			s.ctrCPU[c.Name] += dt * c.CPUUsageCores * w
		}
	}
}

// Name is the simulated server's name (its berth_server_info server label).
func (s *Server) Name() string { return s.spec.Name }

// Address is the host:port Prometheus scrapes.
func (s *Server) Address() string { return s.listener.Addr().String() }

// Spec returns the server's current spec.
func (s *Server) Spec() ServerSpec {
	s.mu.Lock()
	defer s.mu.Unlock()
	spec := s.spec
	spec.Containers = append([]ContainerSpec(nil), s.spec.Containers...)
	return spec
}

// SetAnswering makes the server answer scrapes normally (true) or with 503
// Service Unavailable (false), so its samples go stale in Prometheus.
func (s *Server) SetAnswering(answering bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answering = answering
}

// Update changes the server's values live; the next scrape shows them.
// Counters keep growing from where they were. The name cannot change.
func (s *Server) Update(change func(*ServerSpec)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	spec := s.spec
	spec.Containers = append([]ContainerSpec(nil), s.spec.Containers...)
	change(&spec)
	if spec.Name != s.spec.Name {
		return fmt.Errorf("name: cannot change %q to %q", s.spec.Name, spec.Name)
	}
	if err := spec.validate(); err != nil {
		return fmt.Errorf("server %s: %w", s.spec.Name, err)
	}
	now := time.Now()
	s.advance(now)
	s.spec = spec
	s.resizeCPU(now.Sub(time.Unix(int64(s.bootTime), 0)).Seconds())
	s.syncContainers(now)
	return nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/metrics" {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	if !s.answering {
		s.mu.Unlock()
		http.Error(w, "simulated outage", http.StatusServiceUnavailable)
		return
	}
	now := time.Now()
	s.advance(now)
	var buf bytes.Buffer
	s.render(&buf, now)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// exposition writes the Prometheus text format.
type exposition struct {
	buf  *bytes.Buffer
	last string
}

func (e *exposition) family(name, typ, help string) {
	if e.last == name {
		return
	}
	e.last = name
	fmt.Fprintf(e.buf, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (e *exposition) sample(name string, value float64, labels ...string) {
	e.buf.WriteString(name)
	if len(labels) > 0 {
		e.buf.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				e.buf.WriteByte(',')
			}
			e.buf.WriteString(labels[i])
			e.buf.WriteString(`="`)
			e.buf.WriteString(escapeLabel(labels[i+1]))
			e.buf.WriteByte('"')
		}
		e.buf.WriteByte('}')
	}
	e.buf.WriteByte(' ')
	e.buf.WriteString(strconv.FormatFloat(value, 'g', -1, 64))
	e.buf.WriteByte('\n')
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(v string) string { return labelEscaper.Replace(v) }

func (s *Server) render(buf *bytes.Buffer, now time.Time) {
	e := &exposition{buf: buf}
	spec := s.spec

	e.family("berth_server_info", "gauge", "Identity of the server: name, role and organization.")
	e.sample("berth_server_info", 1, "organization", spec.Organization, "role", spec.Role, "server", spec.Name)
	e.family("berth_server_disk_usage_threshold_ratio", "gauge", "Disk usage ratio above which the server takes no more deployments.")
	e.sample("berth_server_disk_usage_threshold_ratio", spec.diskThreshold())

	e.family("node_boot_time_seconds", "gauge", "Node boot time, in unixtime.")
	e.sample("node_boot_time_seconds", s.bootTime)
	e.family("node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.")
	for core, modes := range s.cpu {
		for m, mode := range cpuModes {
			e.sample("node_cpu_seconds_total", modes[m], "cpu", strconv.Itoa(core), "mode", mode)
		}
	}
	load := float64(spec.Cores) * spec.CPUBusy
	for _, l := range []struct {
		name   string
		offset float64
	}{{"node_load1", 0}, {"node_load5", 0.05}, {"node_load15", 0.1}} {
		e.family(l.name, "gauge", strings.TrimPrefix(l.name, "node_")+" load average.")
		e.sample(l.name, load*s.wave(now, -l.offset))
	}

	used := math.Min(spec.MemoryBytes, spec.MemoryUsedBytes*s.wave(now, 0.5))
	avail := spec.MemoryBytes - used
	memory := []struct {
		name  string
		value float64
	}{
		{"MemTotal", spec.MemoryBytes},
		{"MemAvailable", avail},
		{"MemFree", avail * 0.4},
		{"Buffers", avail * 0.05},
		{"Cached", avail * 0.5},
		{"SwapTotal", 0},
		{"SwapFree", 0},
	}
	for _, m := range memory {
		name := "node_memory_" + m.name + "_bytes"
		e.family(name, "gauge", "Memory information field "+m.name+"_bytes.")
		e.sample(name, math.Floor(m.value))
	}

	diskAvail := spec.DiskBytes - spec.DiskUsedBytes
	const runSize = 512 << 20
	filesystems := []struct {
		device, fstype, mountpoint string
		size, avail                float64
	}{
		{"/dev/vda1", "ext4", "/", spec.DiskBytes, diskAvail},
		{"tmpfs", "tmpfs", "/run", runSize, runSize * 0.9},
	}
	fsMetrics := []struct {
		name  string
		value func(size, avail float64) float64
	}{
		{"node_filesystem_size_bytes", func(size, _ float64) float64 { return size }},
		{"node_filesystem_avail_bytes", func(_, avail float64) float64 { return avail }},
		{"node_filesystem_free_bytes", func(_, avail float64) float64 { return avail }},
		{"node_filesystem_files", func(size, _ float64) float64 { return math.Floor(size / 16384) }},
		{"node_filesystem_files_free", func(size, avail float64) float64 { return math.Floor(avail / 16384) }},
		{"node_filesystem_readonly", func(_, _ float64) float64 { return 0 }},
		{"node_filesystem_device_error", func(_, _ float64) float64 { return 0 }},
	}
	for _, m := range fsMetrics {
		e.family(m.name, "gauge", "Filesystem information.")
		for _, fs := range filesystems {
			e.sample(m.name, math.Floor(m.value(fs.size, fs.avail)), "device", fs.device, "fstype", fs.fstype, "mountpoint", fs.mountpoint)
		}
	}

	network := []struct {
		name     string
		eth, lo  float64
		veth     float64
		isPacket bool
	}{
		{"node_network_receive_bytes_total", s.rx, s.loBytes, s.tx / 2, false},
		{"node_network_transmit_bytes_total", s.tx, s.loBytes, s.rx / 2, false},
		{"node_network_receive_packets_total", s.rxPackets, s.loBytes / 100, s.txPackets / 2, true},
		{"node_network_transmit_packets_total", s.txPackets, s.loBytes / 100, s.rxPackets / 2, true},
		{"node_network_receive_errs_total", 0, 0, 0, true},
		{"node_network_transmit_errs_total", 0, 0, 0, true},
		{"node_network_receive_drop_total", 0, 0, 0, true},
		{"node_network_transmit_drop_total", 0, 0, 0, true},
	}
	for _, n := range network {
		e.family(n.name, "counter", "Network device statistic.")
		e.sample(n.name, math.Floor(n.eth), "device", "eth0")
		e.sample(n.name, math.Floor(n.lo), "device", "lo")
		e.sample(n.name, math.Floor(n.veth), "device", "veth1a2b3c4")
	}
	e.family("node_netstat_Tcp_CurrEstab", "untyped", "Statistic TcpCurrEstab.")
	e.sample("node_netstat_Tcp_CurrEstab", math.Round(float64(spec.Connections)*s.wave(now, 0.75)))

	s.renderContainers(e, now)

	// The real exporter's own scrape metrics; the container rules read
	// berth_scrape_collector_success{collector="containers"} to tell "no
	// containers" (0) from "no container metrics" (absent).
	e.family("berth_scrape_collector_duration_seconds", "gauge", "Duration of a collector scrape.")
	for _, c := range collectors {
		e.sample("berth_scrape_collector_duration_seconds", 0.001, "collector", c)
	}
	e.family("berth_scrape_collector_success", "gauge", "Whether a collector succeeded.")
	for _, c := range collectors {
		e.sample("berth_scrape_collector_success", 1, "collector", c)
	}
}

// collectors are the berth-exporter collectors whose output is simulated.
var collectors = []string{"boottime", "containers", "cpu", "filesystem", "identity", "loadavg", "meminfo", "netdev", "netstat"}

func (s *Server) renderContainers(e *exposition, now time.Time) {
	type ctr struct {
		spec   ContainerSpec
		labels []string
	}
	ctrs := make([]ctr, 0, len(s.spec.Containers))
	builds := 0
	for _, c := range s.spec.Containers {
		managed := "false"
		if c.Managed {
			managed = "true"
		}
		labels := []string{
			"id", "/system.slice/docker-" + s.ids[c.Name] + ".scope",
			"name", c.Name, "image", c.Image,
			"application_id", c.ApplicationID, "service_id", c.ServiceID, "database_id", c.DatabaseID,
			"resource_type", c.ResourceType, "project", c.Project, "environment", c.Environment,
			"pull_request", c.PullRequest, "managed", managed, "role", c.Role,
		}
		ctrs = append(ctrs, ctr{c, labels})
		if c.running() && c.Role == "build" {
			builds++
		}
	}

	e.family("berth_container_info", "gauge", "Container metadata; 1 for every container, running or not.")
	for _, c := range ctrs {
		state := c.spec.State
		if state == "" {
			state = "running"
		}
		e.sample("berth_container_info", 1, append(append([]string(nil), c.labels...), "state", state)...)
	}
	w := s.wave(now, 0.6)
	perRunning := []struct {
		name, typ string
		value     func(c ContainerSpec) (float64, bool)
		extra     []string
	}{
		{"container_cpu_usage_seconds_total", "counter", func(c ContainerSpec) (float64, bool) { return s.ctrCPU[c.Name], true }, []string{"cpu", "total"}},
		{"container_memory_working_set_bytes", "gauge", func(c ContainerSpec) (float64, bool) { return math.Floor(c.MemoryWorkingSetBytes * w), true }, nil},
		{"container_memory_usage_bytes", "gauge", func(c ContainerSpec) (float64, bool) { return math.Floor(c.MemoryWorkingSetBytes * w * 1.2), true }, nil},
		{"container_spec_memory_limit_bytes", "gauge", func(c ContainerSpec) (float64, bool) { return c.MemoryLimitBytes, true }, nil},
		{"container_spec_cpu_period", "gauge", func(c ContainerSpec) (float64, bool) { return 100000, c.CPULimitCores > 0 }, nil},
		{"container_spec_cpu_quota", "gauge", func(c ContainerSpec) (float64, bool) {
			return math.Round(c.CPULimitCores * 100000), c.CPULimitCores > 0
		}, nil},
		{"container_spec_cpu_shares", "gauge", func(ContainerSpec) (float64, bool) { return 1024, true }, nil},
		{"container_start_time_seconds", "gauge", func(c ContainerSpec) (float64, bool) { return s.started[c.Name], true }, nil},
	}
	for _, m := range perRunning {
		e.family(m.name, m.typ, "Container metric (cAdvisor name).")
		for _, c := range ctrs {
			if !c.spec.running() {
				continue
			}
			if v, ok := m.value(c.spec); ok {
				e.sample(m.name, v, append(append([]string(nil), c.labels...), m.extra...)...)
			}
		}
	}
	e.family("berth_builds_active", "gauge", "Running build containers.")
	e.sample("berth_builds_active", float64(builds))
}

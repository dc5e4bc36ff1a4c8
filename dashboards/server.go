package dashboards

// Label filters matching the recording rules' exclusions, so the raw panels
// of one server show what the fleet panels count.
const (
	realFilesystems = `fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs|fuse.lxcfs", device!~"rootfs"`
	realDevices     = `device!~"lo|veth.*|docker.*|br-.*|cni.*|flannel.*|podman.*"`
)

// server is the node view of one server, under node_exporter's metric
// names, plus its containers' top consumers.
func server() *dashboard {
	b := newBoard("berth-server", "Berth / Server",
		"One server in detail: CPU by mode, load per core, memory, filesystems against the server's disk threshold, network, connections, pressure stall information and the containers that use the most.")
	b.vars(
		queryVariable("server", "Server", `label_values(berth_server_info, server)`,
			"The server to show (berth-exporter's --server.name).", false),
		hiddenVariable("instance", `label_values(berth_server_info{server="$server"}, instance)`,
			"Scrape target of the server's berth-exporter: raw node_* and container_* series carry instance, not server."),
	)
	s := `server="$server"`
	i := `instance="$instance"`

	b.row("Overview")
	b.add(4, 4, stat("Role / organization", "The server's role (app or build) and organization, from berth_server_info.", "none",
		instant(`berth_server_info{`+s+`}`, "{{role}} {{organization}}")).textName())
	b.add(4, 4, stat("Kernel", "Kernel release (node_uname_info).", "none",
		instant(`node_uname_info{`+i+`}`, "{{release}}")).textName())
	b.add(4, 4, stat("Uptime", "Time since boot.", "s",
		instant(`time() - node_boot_time_seconds{`+i+`}`, "")).decimals(1).baseColor("blue"))
	b.add(3, 4, stat("CPU cores", "Number of CPUs.", "none",
		instant(`server:node_cpus:count{`+s+`}`, "")).baseColor("blue"))
	b.add(3, 4, stat("Memory", "MemTotal.", "bytes",
		instant(`server:node_memory_total:bytes{`+s+`}`, "")).baseColor("blue"))
	b.add(3, 4, stat("Containers running", "Running containers on the server.", "none",
		instant(`server:container_running:count{`+s+`}`, "")).baseColor("blue"))
	b.add(3, 4, stat("Sample age", "Seconds since the newest sample of this server. Placement treats old data as stale.", "s",
		instant(`server:berth_sample_age_seconds:max{`+s+`}`, "")).steps(at(60, "orange"), at(120, "red")))

	b.row("CPU")
	b.add(12, 8, timeseries("CPU by mode", "Share of all CPUs spent in each mode (idle omitted), stacked: the top of the stack is the CPU utilisation.", "percentunit",
		series(`sum by (mode) (rate(node_cpu_seconds_total{`+i+`, mode!="idle"}[$__rate_interval])) / ignoring (mode) group_left () count(node_cpu_seconds_total{`+i+`, mode="idle"})`, "{{mode}}"),
	).minMax(0, 1).stacked())
	b.add(12, 8, timeseries("Load per core", "Load averages divided by the number of CPUs. Sustained values above 1 mean runnable tasks wait for a CPU.", "none",
		series(`server:node_load1:per_cpu{`+s+`}`, "1m"),
		series(`server:node_load5:per_cpu{`+s+`}`, "5m"),
		series(`server:node_load15:per_cpu{`+s+`}`, "15m"),
	).min0().steps(at(1, "red")).thresholdLines())

	b.row("Memory")
	b.add(12, 8, timeseries("Memory", "Total, used (total − available), available (what can be allocated without swapping), the kernel's page cache and buffers, free, and swap in use.", "bytes",
		series(`node_memory_MemTotal_bytes{`+i+`}`, "total"),
		series(`node_memory_MemTotal_bytes{`+i+`} - node_memory_MemAvailable_bytes{`+i+`}`, "used"),
		series(`node_memory_MemAvailable_bytes{`+i+`}`, "available"),
		series(`node_memory_Cached_bytes{`+i+`} + node_memory_Buffers_bytes{`+i+`}`, "cache + buffers"),
		series(`node_memory_MemFree_bytes{`+i+`}`, "free"),
		series(`node_memory_SwapTotal_bytes{`+i+`} - node_memory_SwapFree_bytes{`+i+`}`, "swap used"),
	).min0().dashedSeries("total"))
	b.add(12, 8, timeseries("Memory utilisation", "1 − available/total, and its highest value over the last 15 minutes (the recent peak placement compares with its max utilisation).", "percentunit",
		series(`server:node_memory_utilisation:ratio{`+s+`}`, "utilisation"),
		series(`server:node_memory_used_bytes:max15m{`+s+`} / server:node_memory_total:bytes{`+s+`}`, "15m peak"),
	).minMax(0, 1).steps(at(0.9, "red")).thresholdLines())

	b.row("Disks")
	b.add(12, 8, timeseries("Filesystem used", "Used share of each real filesystem; the server's own disk threshold is drawn dashed (alerts and placement compare with it).", "percentunit",
		series(`server_mountpoint:node_filesystem_used:ratio{`+s+`}`, "{{mountpoint}}"),
		series(`server:disk_usage_threshold:ratio{`+s+`}`, "threshold"),
	).minMax(0, 1).dashedSeries("threshold"))
	b.add(12, 8, timeseries("Filesystem available", "Space available to unprivileged users per filesystem.", "bytes",
		series(`server_mountpoint:node_filesystem_avail:bytes{`+s+`}`, "{{mountpoint}}"),
	).min0())
	b.add(12, 8, timeseries("Inodes used", "Used share of inodes per filesystem: a disk can be full of small files with bytes left.", "percentunit",
		series(`1 - node_filesystem_files_free{`+i+`, `+realFilesystems+`} / (node_filesystem_files{`+i+`, `+realFilesystems+`} > 0)`, "{{mountpoint}}"),
	).minMax(0, 1).steps(at(0.9, "red")).thresholdLines())
	b.add(12, 8, table("Filesystems", "Size, available space and read-only state of every real filesystem.",
		[]column{
			{title: "Size", unit: "bytes"},
			{title: "Available", unit: "bytes"},
			{title: "Read-only", unit: "bool_yes_no"},
		},
		tableQuery(`node_filesystem_size_bytes{`+i+`, `+realFilesystems+`}`),
		tableQuery(`node_filesystem_avail_bytes{`+i+`, `+realFilesystems+`}`),
		tableQuery(`node_filesystem_readonly{`+i+`, `+realFilesystems+`}`),
	))

	b.row("Network")
	b.add(12, 8, timeseries("Traffic", "Bytes per second per network device (container bridges and veths excluded: their traffic is counted on the host device).", "Bps",
		series(`rate(node_network_receive_bytes_total{`+i+`, `+realDevices+`}[$__rate_interval])`, "{{device}} receive"),
		series(`rate(node_network_transmit_bytes_total{`+i+`, `+realDevices+`}[$__rate_interval])`, "{{device}} transmit"),
	).min0())
	b.add(12, 8, timeseries("Errors and drops", "Packets per second received or sent with errors, or dropped, per device.", "pps",
		series(`rate(node_network_receive_errs_total{`+i+`, `+realDevices+`}[$__rate_interval]) + rate(node_network_transmit_errs_total{`+i+`, `+realDevices+`}[$__rate_interval])`, "{{device}} errors"),
		series(`rate(node_network_receive_drop_total{`+i+`, `+realDevices+`}[$__rate_interval]) + rate(node_network_transmit_drop_total{`+i+`, `+realDevices+`}[$__rate_interval])`, "{{device}} drops"),
	).min0())
	b.add(12, 8, timeseries("Connections", "Established TCP connections, TCP sockets in use and in TIME_WAIT.", "none",
		series(`node_netstat_Tcp_CurrEstab{`+i+`}`, "established"),
		series(`node_sockstat_TCP_inuse{`+i+`}`, "TCP in use"),
		series(`node_sockstat_TCP_tw{`+i+`}`, "TIME_WAIT"),
	).min0())
	b.add(12, 8, timeseries("Pressure stall information", "Share of time some tasks waited for CPU, memory or I/O (PSI, kernel 4.20+). Above a few percent the resource is a bottleneck even if utilisation looks fine.", "percentunit",
		series(`rate(node_pressure_cpu_waiting_seconds_total{`+i+`}[$__rate_interval])`, "CPU some"),
		series(`rate(node_pressure_memory_waiting_seconds_total{`+i+`}[$__rate_interval])`, "memory some"),
		series(`rate(node_pressure_memory_stalled_seconds_total{`+i+`}[$__rate_interval])`, "memory full"),
		series(`rate(node_pressure_io_waiting_seconds_total{`+i+`}[$__rate_interval])`, "I/O some"),
		series(`rate(node_pressure_io_stalled_seconds_total{`+i+`}[$__rate_interval])`, "I/O full"),
	).min0())

	b.row("Containers")
	b.add(12, 8, timeseries("Top containers by CPU", "The ten containers of this server using the most CPU, in cores.", "none",
		series(`topk(10, sum by (name) (rate(container_cpu_usage_seconds_total{`+i+`, cpu="total"}[$__rate_interval])))`, "{{name}}"),
	).min0())
	b.add(12, 8, timeseries("Top containers by memory", "The ten containers of this server with the largest working set (what the kernel cannot reclaim; what OOM decisions use).", "bytes",
		series(`topk(10, max by (name) (container_memory_working_set_bytes{`+i+`}))`, "{{name}}"),
	).min0())
	b.add(12, 8, timeseries("Containers: allocated vs capacity", "CPU limits of running containers against the server's cores, and CPU actually used by containers.", "none",
		series(`server:node_cpus:count{`+s+`}`, "cores"),
		series(`server:container_spec_cpu_cores:sum{`+s+`}`, "CPU limits"),
		series(`server:container_cpu_usage_cores:rate5m{`+s+`}`, "CPU used"),
	).min0().dashedSeries("cores"))
	b.add(12, 8, timeseries("Containers: memory allocated vs capacity", "Memory limits of running containers against the server's memory, and containers' working set.", "bytes",
		series(`server:node_memory_total:bytes{`+s+`}`, "memory"),
		series(`server:container_spec_memory_limit_bytes:sum{`+s+`}`, "memory limits"),
		series(`server:container_memory_working_set:bytes{`+s+`}`, "working set"),
	).min0().dashedSeries("memory"))
	return b.d
}

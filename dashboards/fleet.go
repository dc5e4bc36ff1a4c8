package dashboards

// fleetCapacity is the fleet at a glance: where capacity is left, what is
// allocated, which disks are filling, which servers stopped reporting.
func fleetCapacity() *dashboard {
	b := newBoard("berth-fleet-capacity", "Berth / Fleet capacity",
		"Capacity left on every server of the fleet: headroom by CPU, memory and disk, allocated limits against capacity, disks over their server's threshold and when they fill, stale servers and firing alerts. Built on Berth's recording rules.")
	b.vars(roleVariable(), organizationVariable(), serversVariable())
	f := serverFilter

	b.row("Overview")
	b.add(3, 4, stat("Servers", "Servers that reported berth_server_info in the last hour (server:berth_server_info:last).", "none",
		instant(`count(server:berth_server_info:last{`+f+`})`, "")))
	b.add(3, 4, stat("Stale or down", "Servers seen in the last hour whose newest sample is older than 60 s, placement's default freshness window (policy freshness.fresh): placement never chooses them until they report again.", "none",
		instant(`count((time() - last_over_time(server:berth_last_seen_timestamp_seconds:max{`+f+`}[1h])) > 60) or vector(0)`, "")).
		steps(at(1, "red")))
	b.add(3, 4, stat("Alerts firing", "Berth alerts firing now (ALERTS from the alerting rules in rules/).", "none",
		instant(`count(ALERTS{alertstate="firing"}) or vector(0)`, "")).
		steps(at(1, "orange")))
	b.add(3, 4, stat("Over disk threshold", "Servers with at least one real filesystem above the server's own disk usage threshold (Coolify's per-server setting, berth-exporter --server.disk-usage-threshold).", "none",
		instant(`count(count by (server) (server_mountpoint:node_filesystem_used:ratio{`+f+`} > on (server, role, organization) group_left () server:disk_usage_threshold:ratio{`+f+`})) or vector(0)`, "")).
		steps(at(1, "red")))
	b.add(3, 4, stat("CPU cores", "CPU cores of the selected servers.", "none",
		instant(`sum(server:node_cpus:count{`+f+`})`, "")).baseColor("blue"))
	b.add(3, 4, stat("Memory", "Memory of the selected servers.", "bytes",
		instant(`sum(server:node_memory_total:bytes{`+f+`})`, "")).baseColor("blue"))
	b.add(3, 4, stat("CPU used", "CPU in use over the selected servers (5m average), weighted by cores.", "percentunit",
		instant(`sum(server:node_cpu_utilisation:rate5m{`+f+`} * server:node_cpus:count{`+f+`}) / sum(server:node_cpus:count{`+f+`})`, "")).
		minMax(0, 1).steps(at(0.7, "orange"), at(0.85, "red")))
	b.add(3, 4, stat("Memory used", "Memory in use over the selected servers: 1 − available/total.", "percentunit",
		instant(`1 - sum(server:node_memory_available:bytes{`+f+`}) / sum(server:node_memory_total:bytes{`+f+`})`, "")).
		minMax(0, 1).steps(at(0.8, "orange"), at(0.9, "red")))

	b.row("Headroom")
	b.add(24, 9, table("Servers by headroom",
		"One row per server, least memory left first. CPU left uses the 15-minute peak (what placement uses), memory left is MemAvailable, disk left is what / can still take before the server's disk threshold. Allocated columns are the sum of container limits divided by capacity (containers without limits are counted in the last two columns; placement charges them a default request).",
		[]column{
			{title: "Memory left", unit: "bytes", sortDesc: ptr(false)},
			{title: "CPU left (cores)", unit: "none"},
			{title: "Disk left before threshold", unit: "bytes", thresholds: &thresholds{Mode: "absolute", Steps: []step{{Color: "red"}, at(10e9, "orange"), at(50e9, "green")}}},
			{title: "CPU allocated", unit: "percentunit", thresholds: &thresholds{Mode: "absolute", Steps: []step{{Color: "green"}, at(0.8, "orange"), at(1, "red")}}},
			{title: "Memory allocated", unit: "percentunit", thresholds: &thresholds{Mode: "absolute", Steps: []step{{Color: "green"}, at(0.8, "orange"), at(1, "red")}}},
			{title: "Containers without CPU limit", unit: "none"},
			{title: "Containers without memory limit", unit: "none"},
		},
		tableQuery(`server:node_memory_available:bytes{`+f+`}`),
		tableQuery(`server:node_cpus:count{`+f+`} * (1 - server:node_cpu_utilisation:max15m{`+f+`})`),
		tableQuery(`server:node_filesystem_size:bytes_root{`+f+`} * server:disk_usage_threshold:ratio{`+f+`} - (server:node_filesystem_size:bytes_root{`+f+`} - server:node_filesystem_avail:bytes_root{`+f+`})`),
		tableQuery(`server:container_spec_cpu_cores:sum{`+f+`} / server:node_cpus:count{`+f+`}`),
		tableQuery(`server:container_spec_memory_limit_bytes:sum{`+f+`} / server:node_memory_total:bytes{`+f+`}`),
		tableQuery(`server:container_cpu_unlimited:count{`+f+`}`),
		tableQuery(`server:container_memory_unlimited:count{`+f+`}`),
	))
	b.add(8, 8, bargauge("CPU utilisation (15m peak)", "Highest 5-minute CPU utilisation of the last 15 minutes per server: the figure placement compares with its max utilisation.", "percentunit",
		instant(`sort_desc(server:node_cpu_utilisation:max15m{`+f+`})`, "{{server}}")).
		minMax(0, 1).steps(at(0.7, "orange"), at(0.85, "red")))
	b.add(8, 8, bargauge("Memory utilisation", "1 − MemAvailable/MemTotal per server.", "percentunit",
		instant(`sort_desc(server:node_memory_utilisation:ratio{`+f+`})`, "{{server}}")).
		minMax(0, 1).steps(at(0.8, "orange"), at(0.9, "red")))
	b.add(8, 8, bargauge("Root disk used vs threshold", "Used share of / minus the server's own disk threshold: above 0 the server is over its threshold (alert BerthDiskUsageHigh; placement refuses disk).", "percentunit",
		instant(`sort_desc(server:node_filesystem_used:ratio_root{`+f+`} - server:disk_usage_threshold:ratio{`+f+`})`, "{{server}}")).
		minMax(-1, 0.2).steps(at(-0.1, "orange"), at(0, "red")))

	b.row("Allocated vs capacity")
	b.add(12, 8, timeseries("CPU: capacity, allocated, used", "Fleet CPU cores, the sum of container CPU limits (allocated) and cores actually used: by the whole servers and by containers.", "none",
		series(`sum(server:node_cpus:count{`+f+`})`, "capacity"),
		series(`sum(server:container_spec_cpu_cores:sum{`+f+`})`, "allocated (container limits)"),
		series(`sum(server:node_cpu_utilisation:rate5m{`+f+`} * server:node_cpus:count{`+f+`})`, "used (server)"),
		series(`sum(server:container_cpu_usage_cores:rate5m{`+f+`})`, "used (containers)"),
	).min0().dashedSeries("capacity"))
	b.add(12, 8, timeseries("Memory: capacity, allocated, used", "Fleet memory, the sum of container memory limits (allocated), memory in use (total − available) and containers' working set.", "bytes",
		series(`sum(server:node_memory_total:bytes{`+f+`})`, "capacity"),
		series(`sum(server:container_spec_memory_limit_bytes:sum{`+f+`})`, "allocated (container limits)"),
		series(`sum(server:node_memory_total:bytes{`+f+`} - server:node_memory_available:bytes{`+f+`})`, "used (server)"),
		series(`sum(server:container_memory_working_set:bytes{`+f+`})`, "used (containers)"),
	).min0().dashedSeries("capacity"))
	b.add(12, 8, timeseries("CPU allocated per server", "Sum of container CPU limits divided by the server's cores. Above 100 % the server is overcommitted.", "percentunit",
		series(`server:container_spec_cpu_cores:sum{`+f+`} / server:node_cpus:count{`+f+`}`, "{{server}}"),
	).min0().steps(at(1, "red")).thresholdLines())
	b.add(12, 8, timeseries("Memory allocated per server", "Sum of container memory limits divided by the server's memory. Above 100 % the server is overcommitted.", "percentunit",
		series(`server:container_spec_memory_limit_bytes:sum{`+f+`} / server:node_memory_total:bytes{`+f+`}`, "{{server}}"),
	).min0().steps(at(1, "red")).thresholdLines())

	b.row("Disks")
	b.add(12, 9, table("Filesystems by usage",
		"Every real filesystem (tmpfs, overlay and similar excluded by the recording rules), fullest first, with the distance to the server's own threshold (positive = over it).",
		[]column{
			{title: "Used", unit: "percentunit", sortDesc: ptr(true), max: ptr(1.0), thresholds: &thresholds{Mode: "absolute", Steps: []step{{Color: "green"}, at(0.8, "orange"), at(0.9, "red")}}},
			{title: "Over threshold by", unit: "percentunit", thresholds: &thresholds{Mode: "absolute", Steps: []step{{Color: "green"}, at(-0.05, "orange"), at(0, "red")}}},
			{title: "Available", unit: "bytes"},
		},
		tableQuery(`server_mountpoint:node_filesystem_used:ratio{`+f+`}`),
		tableQuery(`server_mountpoint:node_filesystem_used:ratio{`+f+`} - on (server, role, organization) group_left () server:disk_usage_threshold:ratio{`+f+`}`),
		tableQuery(`server_mountpoint:node_filesystem_avail:bytes{`+f+`}`),
	))
	b.add(12, 9, bargauge("Time until disk full",
		"Linear trend of available space over the last 6 hours: time until the filesystem is full at that rate. Filesystems that are not filling (or fill slower than in a year) show 1 year. The alerts BerthDiskWillFillIn24Hours and BerthDiskWillFillIn4Hours use the same idea (predict_linear).", "s",
		instant(`sort(clamp_max(server_mountpoint:node_filesystem_avail:bytes{`+f+`} / clamp_min(-deriv(server_mountpoint:node_filesystem_avail:bytes{`+f+`}[6h]), 0), 31536000))`, "{{server}} {{mountpoint}}")).
		minMax(0, 31536000).colors("red", at(86400, "orange"), at(7*86400, "green")))
	b.add(24, 8, timeseries("Root disk used per server", "Used share of / per server; each server's own threshold is drawn dashed.", "percentunit",
		series(`server:node_filesystem_used:ratio_root{`+f+`}`, "{{server}}"),
		series(`server:disk_usage_threshold:ratio{`+f+`}`, "{{server}} threshold"),
	).minMax(0, 1).dashedSeries(".* threshold"))

	b.row("Freshness and alerts")
	b.add(12, 9, bargauge("Age of newest sample",
		"Seconds since each server's newest sample (servers seen in the last hour). Fresh servers stay under a few scrape intervals; beyond placement's freshness window (default 60 s) the server is stale and never chosen, beyond 15 min it is missing.", "s",
		instant(`sort_desc(time() - last_over_time(server:berth_last_seen_timestamp_seconds:max{`+f+`}[1h]))`, "{{server}}")).
		min0().steps(at(30, "orange"), at(60, "red")))
	b.add(12, 9, table("Firing alerts", "Alerts firing now, from Berth's alerting rules. Empty when all is well.",
		[]column{{title: "Firing", unit: "none"}},
		tableQuery(`ALERTS{alertstate="firing"}`)).noValue("No alert firing"))
	return b.d
}

package dashboards

// builds shows build servers (role="build"): running and queued builds
// against the per-server cap, load score, and the build containers.
func builds() *dashboard {
	b := newBoard("berth-build-servers", "Berth / Build servers",
		"Build servers (role=\"build\"): running and queued builds against the concurrent-build cap, the load score placement ranks them by, and every build container's duration and peaks.")
	b.vars(
		queryVariable("server", "Build server", `label_values(berth_server_info{role="build"}, server)`,
			"Build servers by name (berth-exporter --server.role=build).", true),
	)
	s := `role="build", server=~"$server"`
	queued := `max by (server) (berth_build_queue_length{server=~"$server"})`
	// A build server without reservations may have no queue series yet.
	queuedOrZero := `(` + queued + ` or on (server) 0 * max by (server) (server:berth_builds_active:sum{` + s + `}))`
	// The cap placement applies (policy builds.concurrent_builds or a
	// per-server override); the policy default 2 for build servers placement
	// has not exported yet, as in the BerthBuildServerOverloaded alert.
	buildCap := `(max by (server) (berth_build_concurrency_limit{server=~"$server"}) or on (server) (0 * max by (server) (server:berth_builds_active:sum{` + s + `}) + 2))`

	b.row("Overview")
	b.add(4, 4, stat("Build servers", "Build servers that reported in the last hour.", "none",
		instant(`count(server:berth_server_info:last{`+s+`}) or vector(0)`, "")).baseColor("blue"))
	b.add(4, 4, stat("Running builds", "Build containers running now (Coolify's helper and buildx containers, detected by berth-exporter).", "none",
		instant(`sum(server:berth_builds_active:sum{`+s+`}) or vector(0)`, "")).baseColor("blue"))
	b.add(4, 4, stat("Queued builds", "Build reservations not started yet (placement's berth_build_queue_length).", "none",
		instant(`sum(`+queuedOrZero+`) or vector(0)`, "")).steps(at(1, "orange"), at(5, "red")))
	b.add(4, 4, stat("Servers at cap", "Build servers running as many builds as the cap allows: placement sends new builds elsewhere or queues them.", "none",
		instant(`count(server:berth_builds_active:sum{`+s+`} >= on (server) group_left () `+buildCap+`) or vector(0)`, "")).steps(at(1, "orange")))
	b.add(4, 4, stat("Build placements", "Build placement decisions answered in the dashboard's time range.", "none",
		instant(`sum(increase(berth_placement_decisions_total{kind="build"}[$__range])) or vector(0)`, "")).decimals(0).baseColor("blue"))
	b.add(4, 4, stat("Builds not placed", "Build placement requests no build server could take (no_fit) or that failed (error) in the time range.", "none",
		instant(`sum(increase(berth_placement_decisions_total{kind="build", outcome!="placed"}[$__range])) or vector(0)`, "")).decimals(0).steps(at(1, "orange")))

	b.row("Builds vs cap")
	b.add(12, 8, timeseries("Running and queued builds", "Running builds and queued build reservations per build server; the caps (berth_build_concurrency_limit, from the placement policy) are dashed.", "none",
		series(`server:berth_builds_active:sum{`+s+`}`, "{{server}} running"),
		series(queued, "{{server}} queued"),
		series(buildCap, "{{server}} cap"),
	).min0().decimals(0).dashedSeries(".* cap"))
	b.add(12, 8, timeseries("Load score", "Placement's default build load score (lower is better): CPU% × 0.4 + memory% × 0.3 + queued × 10 + running × 15. Computed here with the default weights; GET /api/v1/build-servers gives the score with your policy's weights and started reservations.", "none",
		series(`server:node_cpu_utilisation:rate5m{`+s+`} * 100 * 0.4 + server:node_memory_utilisation:ratio{`+s+`} * 100 * 0.3 + on (server) group_left () `+queuedOrZero+` * 10 + server:berth_builds_active:sum{`+s+`} * 15`, "{{server}}"),
	).min0())
	b.add(8, 8, bargauge("Builds / cap", "Running builds divided by the build server's cap (berth_build_concurrency_limit; 2, the policy default, until placement exports it).", "percentunit",
		instant(`server:berth_builds_active:sum{`+s+`} / on (server) group_left () `+buildCap, "{{server}}")).
		minMax(0, 1).steps(at(0.5, "orange"), at(1, "red")))
	b.add(8, 8, timeseries("Build servers CPU", "CPU utilisation (5m) of each build server.", "percentunit",
		series(`server:node_cpu_utilisation:rate5m{`+s+`}`, "{{server}}"),
	).minMax(0, 1))
	b.add(8, 8, timeseries("Build servers memory", "Memory utilisation of each build server.", "percentunit",
		series(`server:node_memory_utilisation:ratio{`+s+`}`, "{{server}}"),
	).minMax(0, 1))

	b.row("Build containers")
	b.add(24, 9, table("Running builds", "Every running build container on the selected build servers, longest-running first: elapsed time, CPU now, CPU time used so far (how heavy the build is) and memory peak during the dashboard's time range. Coolify names build containers by deployment id; the application is known to placement through its build reservation.",
		[]column{
			{title: "Elapsed", unit: "s", sortDesc: ptr(true)},
			{title: "CPU now (cores)", unit: "none"},
			{title: "CPU time used", unit: "s"},
			{title: "Peak memory", unit: "bytes"},
		},
		tableQuery(`max by (server, name, image) (`+onServers(`time() - container_start_time_seconds{role="build"}`)+`)`),
		tableQuery(sumBy("server, name, image", `rate(container_cpu_usage_seconds_total{role="build", cpu="total"}[$__rate_interval])`)),
		tableQuery(sumBy("server, name, image", `container_cpu_usage_seconds_total{role="build", cpu="total"}`)),
		tableQuery(`max by (server, name, image) (`+onServers(`max_over_time(container_memory_working_set_bytes{role="build"}[$__range])`)+`)`),
	))
	b.add(12, 8, timeseries("Build CPU per server", "CPU used by build containers per build server, cores.", "none",
		series(sumBy("server", `rate(container_cpu_usage_seconds_total{role="build", cpu="total"}[$__rate_interval])`), "{{server}}"),
	).min0())
	b.add(12, 8, timeseries("Build memory per server", "Working set of build containers per build server.", "bytes",
		series(sumBy("server", `container_memory_working_set_bytes{role="build"}`), "{{server}}"),
	).min0())

	b.row("Build placements")
	b.add(8, 8, timeseries("Build decisions", "Build placement decisions per second by outcome (placed, no_fit, error).", "reqps",
		series(`sum by (outcome) (rate(berth_placement_decisions_total{kind="build"}[$__rate_interval]))`, "{{outcome}}"),
	).min0())
	b.add(8, 8, timeseries("Build rejections by reason", "Build servers passed over per second, by reason (at_build_capacity, insufficient_memory, metrics_stale…).", "none",
		series(`sum by (reason) (rate(berth_placement_rejections_total{kind="build"}[$__rate_interval]))`, "{{reason}}"),
	).min0())
	b.add(8, 8, timeseries("Build reservations", "Open build reservations per build server: queued (not started) and active (building).", "none",
		series(`sum by (server, state) (berth_placement_reservations{kind="build", server=~"$server"})`, "{{server}} {{state}}"),
	).min0().decimals(0))
	return b.d
}

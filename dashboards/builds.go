package dashboards

// builds shows build servers (role="build"): running and queued builds
// against the per-server cap, load score, the build containers, and the
// builds placement placed, per application.
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
	// The score placement computes with the policy's weights
	// (berth_build_server_load_score, exported while a build request read
	// the server in the last 5 minutes); otherwise the seed's default
	// weights over the recording rules.
	defaultScore := `server:node_cpu_utilisation:rate5m{` + s + `} * 100 * 0.4 + server:node_memory_utilisation:ratio{` + s + `} * 100 * 0.3 + on (server) group_left () ` + queuedOrZero + ` * 10 + server:berth_builds_active:sum{` + s + `} * 15`
	b.add(12, 8, timeseries("Load score", "The build load score placement ranks build servers by (lower is better), as placement computes it with your policy's weights (berth_build_server_load_score: CPU and memory of the newest fleet snapshot a build request read, queued and running builds from its reservations). For a build server no build request has looked at in the last 5 minutes, the seed's default CPU% × 0.4 + memory% × 0.3 + queued × 10 + running × 15 over the recording rules.", "none",
		series(`max by (server) (berth_build_server_load_score{server=~"$server"}) or on (server) (`+defaultScore+`)`, "{{server}}"),
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
	b.add(24, 9, table("Running builds", "Every running build container on the selected build servers, longest-running first: elapsed time, CPU now, CPU time used so far (how heavy the build is) and memory peak during the dashboard's time range. Coolify names build containers by deployment id, so they carry no application; the builds placement placed are shown per application below.",
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

	b.row("Builds per application")
	// placement's build records: builds it placed that were started and
	// finished (POST /api/v1/builds/{id}/finish), newest per application,
	// for applications that built in the last 7 days (at most 100).
	last := func(metric string) string {
		return `max by (application_id, server) (` + metric + `{server=~"$server"})`
	}
	buckets := `sum by (server, le) (increase(berth_build_duration_seconds_bucket{server=~"$server"}[$__range]))`
	b.add(4, 8, stat("Builds finished", "Builds placed by berth-placement that were started and finished in the time range (berth_build_duration_seconds_count).", "none",
		instant(`sum(increase(berth_build_duration_seconds_count{server=~"$server"}[$__range])) or vector(0)`, "")).decimals(0).baseColor("blue"))
	b.add(8, 8, bargauge("Build duration per server", "Median and 90th percentile duration of the builds that finished in the time range, per build server (berth_build_duration_seconds, start to finish as the deployer reported them). Empty when no build finished in the time range.", "s",
		instant(`histogram_quantile(0.5, `+buckets+`)`, "{{server}} p50"),
		instant(`histogram_quantile(0.9, `+buckets+`)`, "{{server}} p90"),
	).min0().steps(at(600, "orange"), at(1800, "red")))
	b.add(12, 8, table("Last build per application", "The newest finished build of each application placed through berth-placement (applications that built in the last 7 days, at most 100): its build server, duration (start to finish), peak working set of its build container (empty when Prometheus held no container for it) and when it finished. From placement's build records; build containers carry no application label.",
		[]column{
			{title: "Duration", unit: "s", sortDesc: ptr(true)},
			{title: "Peak memory", unit: "bytes"},
			{title: "Finished", unit: "dateTimeFromNow"},
		},
		tableQuery(last("berth_build_last_duration_seconds")),
		tableQuery(last("berth_build_last_peak_memory_bytes")),
		tableQuery(last("berth_build_last_finished_timestamp_seconds")+` * 1000`),
	))
	b.add(12, 8, bargauge("Build duration per application", "Duration of each application's newest finished build, the ten longest (berth_build_last_duration_seconds). Builds that run close to their estimate's duration × 2 outlive the reservation's default renewal.", "s",
		instant(`topk(10, max by (application_id) (berth_build_last_duration_seconds{server=~"$server"}))`, "{{application_id}}"),
	).min0().steps(at(600, "orange"), at(1800, "red")))
	b.add(12, 8, bargauge("Peak memory per application", "Peak working set of each application's newest finished build, the ten largest (berth_build_last_peak_memory_bytes, looked up in Prometheus when the build finished). History estimates reserve the highest of the last ten builds' peaks.", "bytes",
		instant(`topk(10, max by (application_id) (berth_build_last_peak_memory_bytes{server=~"$server"}))`, "{{application_id}}"),
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

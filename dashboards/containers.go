package dashboards

import "strings"

// containerFilter selects container series by the dashboard's variables;
// container labels come from Coolify's Docker labels (docs/exporter.md).
const containerFilter = `role=~"$container_role", project=~"$project", environment=~"$environment", application_id=~"$application"`

// onServers adds the server name to per-container series (they carry the
// exporter's instance, not the server) and keeps the selected servers.
func onServers(expr string) string {
	return `(` + expr + `) * on (instance) group_left (server) berth_server_info{server=~"$server"}`
}

// sumBy aggregates per-container series by labels, over the selected servers.
func sumBy(labels, expr string) string {
	return `sum by (` + labels + `) (` + onServers(expr) + `)`
}

// withFilter inserts extra matchers into the container filter.
func withFilter(extra string) string {
	return strings.Join([]string{containerFilter, extra}, ", ")
}

// containers is CPU, memory, throttling, restarts and OOM kills by
// application, project, environment and role, and limits against usage.
func containers() *dashboard {
	b := newBoard("berth-containers", "Berth / Containers & applications",
		"What runs on the fleet and what it uses: CPU, memory, CPU throttling, restarts and OOM kills by application, project, environment and container role; container limits against actual use.")
	b.vars(
		queryVariable("server", "Server", `label_values(berth_server_info, server)`, "Servers by name.", true),
		queryVariable("container_role", "Container role", `label_values(berth_container_info, role)`,
			"Container role detected by berth-exporter: app, database, service, build, backup, infra or other.", true),
		queryVariable("project", "Project", `label_values(berth_container_info{role=~"$container_role"}, project)`,
			"Coolify project (coolify.projectName). All also matches containers without one.", true),
		queryVariable("environment", "Environment", `label_values(berth_container_info{role=~"$container_role", project=~"$project"}, environment)`,
			"Coolify environment (coolify.environmentName).", true),
		queryVariable("application", "Application", `label_values(berth_container_info{role=~"$container_role", project=~"$project", environment=~"$environment"}, application_id)`,
			"Coolify application id (coolify.applicationId); preview deployments share their application's id.", true),
	)
	c := containerFilter
	cpu := `rate(container_cpu_usage_seconds_total{` + withFilter(`cpu="total"`) + `}[$__rate_interval])`
	mem := `container_memory_working_set_bytes{` + c + `}`
	// Share of CFS periods throttled; groups without periods (no CPU
	// limit, or idle) are left out rather than drawn as NaN.
	throttled := func(by, filter string) string {
		return sumBy(by, `rate(container_cpu_cfs_throttled_periods_total{`+filter+`}[$__rate_interval])`) +
			` / (` + sumBy(by, `rate(container_cpu_cfs_periods_total{`+filter+`}[$__rate_interval])`) + ` > 0)`
	}

	b.row("Overview")
	b.add(4, 4, stat("Running containers", "Running containers matching the filters.", "none",
		instant(`count(`+onServers(`berth_container_info{`+withFilter(`state="running"`)+`}`)+`) or vector(0)`, "")).baseColor("blue"))
	b.add(4, 4, stat("Not running", "Containers that exist but do not run (exited, created, dead…).", "none",
		instant(`count(`+onServers(`berth_container_info{`+withFilter(`state!="running"`)+`}`)+`) or vector(0)`, "")).
		steps(at(1, "orange")))
	b.add(4, 4, stat("Applications", "Distinct Coolify applications with a running container.", "none",
		instant(`count(count by (application_id) (`+onServers(`berth_container_info{`+withFilter(`state="running", application_id!=""`)+`}`)+`)) or vector(0)`, "")).baseColor("blue"))
	b.add(4, 4, stat("CPU used", "CPU used by the containers, in cores.", "none",
		instant(`sum(`+onServers(cpu)+`)`, "")).decimals(2).baseColor("blue"))
	b.add(4, 4, stat("Memory used", "Working set of the containers.", "bytes",
		instant(`sum(`+onServers(mem)+`)`, "")).baseColor("blue"))
	b.add(2, 4, stat("Restarts", "Container restarts during the dashboard's time range (Docker's RestartCount).", "none",
		instant(`sum(`+onServers(`increase(berth_container_restarts{`+c+`}[$__range])`)+`) or vector(0)`, "")).
		decimals(0).steps(at(1, "orange")))
	b.add(2, 4, stat("OOM kills", "Out-of-memory kills inside containers during the dashboard's time range (from the cgroup, so kills of child processes count too).", "none",
		instant(`sum(`+onServers(`increase(container_oom_events_total{`+c+`}[$__range])`)+`) or vector(0)`, "")).
		decimals(0).steps(at(1, "red")))

	b.row("By application")
	b.add(12, 8, timeseries("CPU by application", "CPU used by each application's containers (all servers, preview deployments included), cores.", "none",
		series(sumBy("application_id, project, environment", `rate(container_cpu_usage_seconds_total{`+withFilter(`cpu="total", application_id!=""`)+`}[$__rate_interval])`), "{{project}}/{{environment}} app {{application_id}}"),
	).min0())
	b.add(12, 8, timeseries("Memory by application", "Working set of each application's containers.", "bytes",
		series(sumBy("application_id, project, environment", `container_memory_working_set_bytes{`+withFilter(`application_id!=""`)+`}`), "{{project}}/{{environment}} app {{application_id}}"),
	).min0())
	b.add(24, 9, table("Applications", "Per application: running containers, CPU and memory used, and the limits they declare (empty when a container has none; placement then charges a default request).",
		[]column{
			{title: "Containers", unit: "none"},
			{title: "CPU used (cores)", unit: "none", sortDesc: nil},
			{title: "CPU limit (cores)", unit: "none"},
			{title: "Memory used", unit: "bytes"},
			{title: "Memory limit", unit: "bytes"},
		},
		tableQuery(sumBy("application_id, project, environment", `berth_container_info{`+withFilter(`state="running", application_id!=""`)+`}`)),
		tableQuery(sumBy("application_id, project, environment", `rate(container_cpu_usage_seconds_total{`+withFilter(`cpu="total", application_id!=""`)+`}[$__rate_interval])`)),
		tableQuery(sumBy("application_id, project, environment", `container_spec_cpu_quota{`+withFilter(`application_id!=""`)+`} / on (instance, id) group_left () container_spec_cpu_period{`+withFilter(`application_id!=""`)+`}`)),
		tableQuery(sumBy("application_id, project, environment", `container_memory_working_set_bytes{`+withFilter(`application_id!=""`)+`}`)),
		tableQuery(sumBy("application_id, project, environment", `container_spec_memory_limit_bytes{`+withFilter(`application_id!=""`)+`}`)),
	))

	b.row("By role, project and environment")
	b.add(12, 8, timeseries("CPU by container role", "CPU used by containers of each role (app, database, service, build, backup, infra, other), stacked.", "none",
		series(sumBy("role", cpu), "{{role}}"),
	).min0().stacked())
	b.add(12, 8, timeseries("Memory by container role", "Working set of containers of each role, stacked.", "bytes",
		series(sumBy("role", mem), "{{role}}"),
	).min0().stacked())
	b.add(12, 8, timeseries("CPU by project and environment", "CPU used per Coolify project and environment (containers without a project are left out).", "none",
		series(sumBy("project, environment", `rate(container_cpu_usage_seconds_total{`+withFilter(`cpu="total", project!=""`)+`}[$__rate_interval])`), "{{project}}/{{environment}}"),
	).min0())
	b.add(12, 8, timeseries("Memory by project and environment", "Working set per Coolify project and environment.", "bytes",
		series(sumBy("project, environment", `container_memory_working_set_bytes{`+withFilter(`project!=""`)+`}`), "{{project}}/{{environment}}"),
	).min0())

	b.row("Limits vs usage")
	b.add(12, 8, timeseries("Memory used / limit (top 10)", "Working set divided by the memory limit, for the ten containers closest to theirs. At 100 % the kernel reclaims and then OOM-kills inside the container.", "percentunit",
		series(`topk(10, max by (server, name) (`+onServers(`container_memory_working_set_bytes{`+c+`} / on (instance, id) group_left () (container_spec_memory_limit_bytes{`+c+`} > 0)`)+`))`, "{{server}} {{name}}"),
	).minMax(0, 1).steps(at(0.8, "orange"), at(0.95, "red")).thresholdLines())
	b.add(12, 8, timeseries("CPU used / limit (top 10)", "CPU used divided by the CPU limit (quota/period), for the ten containers closest to theirs. At 100 % the container is throttled.", "percentunit",
		series(`topk(10, max by (server, name) (`+onServers(`sum by (instance, id, name) (`+cpu+`) / on (instance, id) group_left () ((container_spec_cpu_quota{`+c+`} > 0) / on (instance, id) group_left () container_spec_cpu_period{`+c+`})`)+`))`, "{{server}} {{name}}"),
	).min0().steps(at(0.9, "red")).thresholdLines())
	b.add(12, 8, timeseries("CPU throttling by application", "Share of CFS periods in which the application's containers were throttled (only containers with a CPU limit have periods). Above ~25 % latency suffers: raise the limit or move the application.", "percentunit",
		series(throttled("application_id, project, environment", withFilter(`application_id!=""`)), "{{project}}/{{environment}} app {{application_id}}"),
	).min0().steps(at(0.25, "red")).thresholdLines())
	b.add(12, 8, timeseries("Throttled time by container (top 10)", "Seconds per second each container spent throttled: how much more CPU it wanted than its limit allows, in cores.", "none",
		series(`topk(10, sum by (server, name) (`+onServers(`rate(container_cpu_cfs_throttled_seconds_total{`+c+`}[$__rate_interval])`)+`))`, "{{server}} {{name}}"),
	).min0())

	b.row("Restarts and OOM kills")
	b.add(12, 8, timeseries("Restarts per hour", "Container restarts in the preceding hour by application, project, environment and role (Docker's RestartCount).", "none",
		series(sumBy("role, project, environment, application_id", `increase(berth_container_restarts{`+c+`}[1h])`), "{{role}} {{project}}/{{environment}} {{application_id}}"),
	).min0().steps(at(3, "red")).thresholdLines())
	b.add(12, 8, timeseries("OOM kills per hour", "Out-of-memory kills in the preceding hour by application, project, environment and role.", "none",
		series(sumBy("role, project, environment, application_id", `increase(container_oom_events_total{`+c+`}[1h])`), "{{role}} {{project}}/{{environment}} {{application_id}}"),
	).min0().steps(at(1, "red")).thresholdLines())
	b.add(24, 9, table("Containers", "Every container matching the filters with its state, restart count, last exit code and usage against limits.",
		[]column{
			{title: "CPU used (cores)", unit: "none", sortDesc: ptr(true)},
			{title: "CPU limit (cores)", unit: "none"},
			{title: "Memory used", unit: "bytes"},
			{title: "Memory limit", unit: "bytes"},
			{title: "Restarts", unit: "none", thresholds: &thresholds{Mode: "absolute", Steps: []step{{Color: "transparent"}, at(1, "orange"), at(5, "red")}}},
			{title: "Last exit code", unit: "none"},
		},
		tableQuery(sumBy("server, name, role, project, environment, application_id", cpu)),
		tableQuery(sumBy("server, name, role, project, environment, application_id", `(container_spec_cpu_quota{`+c+`} > 0) / on (instance, id) group_left () container_spec_cpu_period{`+c+`}`)),
		tableQuery(sumBy("server, name, role, project, environment, application_id", mem)),
		tableQuery(sumBy("server, name, role, project, environment, application_id", `container_spec_memory_limit_bytes{`+c+`} > 0`)),
		tableQuery(sumBy("server, name, role, project, environment, application_id", `berth_container_restarts{`+c+`}`)),
		tableQuery(sumBy("server, name, role, project, environment, application_id", `berth_container_exit_code{`+c+`}`)),
	))
	return b.d
}

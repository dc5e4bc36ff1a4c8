package dashboards

// placementAPI is the health of berth-placement: traffic, latency,
// decisions and rejections, its Prometheus source, snapshot age and
// reservations.
func placementAPI() *dashboard {
	b := newBoard("berth-placement-api", "Berth / Placement API",
		"Health of berth-placement: request rate, errors and latency per endpoint, placement decisions and rejections by reason, whether its Prometheus source answers, the age of its fleet snapshot, and open reservations.")
	b.vars(queryVariable("instance", "Placement instance", `label_values(berth_placement_source_up, instance)`,
		"berth-placement scrape targets.", true))
	i := `instance=~"$instance"`
	quantile := func(q, metric, by string) string {
		return `histogram_quantile(` + q + `, sum by (le` + by + `) (rate(` + metric + `_bucket{` + i + `}[$__rate_interval])))`
	}

	b.row("Overview")
	b.add(4, 4, stat("Prometheus source", "1 when the Prometheus behind placement answers (embedded TSDB or remote --prometheus.url). When it does not, placement answers 503 rather than guess.", "none",
		instant(`min(berth_placement_source_up{`+i+`})`, "")).
		colors("red", at(1, "green")).
		valueText(valueMapping{"0", "down", "red"}, valueMapping{"1", "up", "green"}))
	b.add(4, 4, stat("Snapshot age", "Age of the fleet snapshot placement decides on (it is cached for a short time, then refreshed with a handful of vector queries).", "s",
		instant(`max(berth_placement_snapshot_age_seconds{`+i+`})`, "")).steps(at(30, "orange"), at(120, "red")))
	b.add(4, 4, stat("Requests", "API requests per second (5m).", "reqps",
		instant(`sum(rate(berth_placement_requests_total{`+i+`}[5m]))`, "")).baseColor("blue").graph())
	b.add(4, 4, stat("Server errors", "Share of requests answered 5xx (5m). 503 means the Prometheus source did not answer.", "percentunit",
		instant(`(sum(rate(berth_placement_requests_total{`+i+`, code=~"5.."}[5m])) or vector(0)) / sum(rate(berth_placement_requests_total{`+i+`}[5m]))`, "")).
		minMax(0, 1).steps(at(0.01, "orange"), at(0.05, "red")))
	b.add(4, 4, stat("Placed", "Share of placement decisions (deployments and builds) that found a server, over the time range.", "percentunit",
		instant(`(sum(increase(berth_placement_decisions_total{`+i+`, outcome="placed"}[$__range])) or vector(0)) / sum(increase(berth_placement_decisions_total{`+i+`}[$__range]))`, "")).
		minMax(0, 1).colors("red", at(0.5, "orange"), at(0.9, "green")))
	b.add(4, 4, stat("Open reservations", "Reservations placement counts against capacity until released, confirmed running, or expired.", "none",
		instant(`sum(berth_placement_reservations{`+i+`}) or vector(0)`, "")).baseColor("blue"))

	b.row("Requests")
	b.add(12, 8, timeseries("Requests by endpoint and code", "Requests per second by route template and HTTP status.", "reqps",
		series(`sum by (endpoint, code) (rate(berth_placement_requests_total{`+i+`}[$__rate_interval]))`, "{{endpoint}} {{code}}"),
	).min0())
	b.add(12, 8, timeseries("Latency by endpoint", "99th and 50th percentile of the time to answer, per route template.", "s",
		series(quantile("0.99", "berth_placement_request_duration_seconds", ", endpoint"), "p99 {{endpoint}}"),
		series(quantile("0.5", "berth_placement_request_duration_seconds", ", endpoint"), "p50 {{endpoint}}"),
	).min0().steps(at(0.025, "orange"), at(0.25, "red")).thresholdLines())
	b.add(12, 8, timeseries("Errors", "Requests per second answered with a 4xx (bad input, unknown server, quota refusal…) or 5xx status.", "reqps",
		series(`sum by (code) (rate(berth_placement_requests_total{`+i+`, code=~"4..|5.."}[$__rate_interval]))`, "{{code}}"),
	).min0())
	b.add(12, 8, timeseries("PromQL query latency", "Time placement waits for its Prometheus per query (99th and 50th percentile).", "s",
		series(quantile("0.99", "berth_placement_query_duration_seconds", ""), "p99"),
		series(quantile("0.5", "berth_placement_query_duration_seconds", ""), "p50"),
	).min0())

	b.row("Decisions")
	b.add(12, 8, timeseries("Decisions by kind and outcome", "Placement decisions per second: deployment or build, placed / no_fit / error.", "reqps",
		series(`sum by (kind, outcome) (rate(berth_placement_decisions_total{`+i+`}[$__rate_interval]))`, "{{kind}} {{outcome}}"),
	).min0())
	b.add(12, 8, timeseries("Rejections by reason", "Servers passed over per second, by kind and reason code (insufficient_memory, metrics_stale, wrong_role, at_build_capacity…). One decision rejects many servers.", "none",
		series(`sum by (kind, reason) (rate(berth_placement_rejections_total{`+i+`}[$__rate_interval]))`, "{{kind}} {{reason}}"),
	).min0())
	b.add(12, 8, bargauge("Rejections in time range", "Rejected servers by reason over the dashboard's time range: the reasons capacity runs out.", "none",
		instant(`sort_desc(sum by (kind, reason) (increase(berth_placement_rejections_total{`+i+`}[$__range])))`, "{{kind}} {{reason}}")).decimals(0).baseColor("blue"))
	b.add(12, 8, timeseries("Reservations", "Open reservations by kind and state (queued: not started; active: confirmed or building).", "none",
		series(`sum by (kind, state) (berth_placement_reservations{`+i+`})`, "{{kind}} {{state}}"),
	).min0().decimals(0))

	b.row("Source")
	b.add(12, 7, timeseries("Prometheus source up", "1 when placement's Prometheus answers, 0 when not (placement then answers 503).", "none",
		series(`berth_placement_source_up{`+i+`}`, "{{instance}}"),
	).minMax(0, 1))
	b.add(12, 7, timeseries("Snapshot age", "Age of the fleet snapshot used for decisions.", "s",
		series(`berth_placement_snapshot_age_seconds{`+i+`}`, "{{instance}}"),
	).min0())
	return b.d
}

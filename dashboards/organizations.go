package dashboards

import "fmt"

// quotaResources are the dimensions of berth_organization_usage and
// berth_organization_quota_limit (docs/placement/quotas.md), with their Grafana unit.
var quotaResources = []struct{ name, title, unit string }{
	{"servers", "Servers", "none"},
	{"applications", "Applications", "none"},
	{"cpu_cores", "CPU cores", "none"},
	{"memory_bytes", "Memory", "bytes"},
}

// organizations is usage against quota per organization and dimension, and
// the violations.
func organizations() *dashboard {
	b := newBoard("berth-organizations", "Berth / Organizations",
		"Organizations (teams) sharing the installation: usage against quota for servers, applications, CPU and memory (as placement's quota checks count them, reservations included), violations, and what each organization runs.")
	b.vars(queryVariable("organization", "Organization", `label_values(berth_server_info, organization)`,
		"Organizations from berth-exporter's --server.organization.", true))
	o := `organization=~"$organization"`
	usage := func(extra string) string {
		return fmt.Sprintf(`max by (organization, resource) (berth_organization_usage{%s%s})`, o, extra)
	}
	limit := func(extra string) string {
		return fmt.Sprintf(`max by (organization, resource) (berth_organization_quota_limit{%s%s})`, o, extra)
	}

	b.row("Quotas")
	b.add(6, 4, stat("Organizations", "Organizations with at least one server.", "none",
		instant(`count(count by (organization) (server:berth_server_info:last{`+o+`, organization!=""}))`, "")).baseColor("blue"))
	b.add(6, 4, stat("Over quota", "Organizations using more than their quota in at least one dimension (e.g. after the quota was lowered, or containers started outside placement).", "none",
		instant(`count(count by (organization) (`+usage("")+` > on (organization, resource) `+limit("")+`)) or vector(0)`, "")).
		steps(at(1, "red")))
	b.add(6, 4, stat("Above 80 % of quota", "Organizations using more than 80 % of their quota in at least one dimension.", "none",
		instant(`count(count by (organization) (`+usage("")+` > on (organization, resource) 0.8 * `+limit("")+`)) or vector(0)`, "")).
		steps(at(1, "orange")))
	b.add(6, 4, stat("Containers without limits", "Managed running containers of the organizations without a memory limit: placement and quotas charge them the policy's default request.", "none",
		instant(`sum(organization:container_memory_unlimited:count{`+o+`}) or vector(0)`, "")).steps(at(1, "orange")))

	var cols []column
	var targets []target
	for _, r := range quotaResources {
		cols = append(cols,
			column{title: r.title + " used", unit: r.unit},
			column{title: r.title + " quota", unit: r.unit},
		)
		targets = append(targets,
			tableQuery(fmt.Sprintf(`max by (organization) (berth_organization_usage{%s, resource=%q})`, o, r.name)),
			tableQuery(fmt.Sprintf(`max by (organization) (berth_organization_quota_limit{%s, resource=%q})`, o, r.name)),
		)
	}
	b.add(24, 8, table("Usage and quota", "Per organization and dimension: usage as placement counts it (container limits of managed containers, unlimited ones at the policy's default, plus open reservations) and the quota. An empty quota cell means unlimited.", cols, targets...))
	b.add(12, 9, bargauge("Quota used", "Usage divided by quota, per organization and dimension (unlimited dimensions are not shown). Placement refuses what would go over 100 %.", "percentunit",
		instant(`sort_desc(`+usage("")+` / on (organization, resource) (`+limit("")+` > 0))`, "{{organization}} {{resource}}")).
		minMax(0, 1).steps(at(0.8, "orange"), at(1, "red")))
	b.add(12, 9, table("Violations", "Dimensions in which an organization uses more than its quota: usage − quota. Empty when every organization complies.",
		[]column{{title: "Over quota by", unit: "none"}},
		tableQuery(usage("")+` - on (organization, resource) `+limit("")+` > 0`)).noValue("Every organization within quota"))

	b.row("Usage over time")
	for _, r := range quotaResources {
		sel := fmt.Sprintf(`, resource=%q`, r.name)
		b.add(12, 8, timeseries(r.title+": usage and quota", fmt.Sprintf("%s used per organization (berth_organization_usage{resource=%q}); the quota is dashed.", r.title, r.name), r.unit,
			series(`max by (organization) (`+usage(sel)+`)`, "{{organization}}"),
			series(`max by (organization) (`+limit(sel)+`)`, "{{organization}} quota"),
		).min0().dashedSeries(".* quota"))
	}

	b.row("What the organizations run")
	b.add(12, 8, timeseries("Allocated CPU limits", "Sum of CPU limits (cores) of managed running containers per organization, from the recording rules (reservations not included).", "none",
		series(`organization:container_spec_cpu_cores:sum{`+o+`}`, "{{organization}}"),
	).min0())
	b.add(12, 8, timeseries("Allocated memory limits", "Sum of memory limits of managed running containers per organization, from the recording rules.", "bytes",
		series(`organization:container_spec_memory_limit_bytes:sum{`+o+`}`, "{{organization}}"),
	).min0())
	b.add(12, 8, timeseries("Containers without limits", "Managed running containers without a CPU quota or memory limit, per organization.", "none",
		series(`organization:container_cpu_unlimited:count{`+o+`}`, "{{organization}} no CPU limit"),
		series(`organization:container_memory_unlimited:count{`+o+`}`, "{{organization}} no memory limit"),
	).min0().decimals(0))
	b.add(12, 8, timeseries("Root disk used on the organization's servers", "Bytes used on / summed over each organization's servers.", "bytes",
		series(`sum by (organization) (server:node_filesystem_size:bytes_root{`+o+`} - server:node_filesystem_avail:bytes_root{`+o+`})`, "{{organization}}"),
	).min0())
	b.add(24, 8, table("Applications", "Running managed containers per organization and application (preview deployments count with their application).",
		[]column{{title: "Running containers", unit: "none", sortDesc: ptr(true)}},
		tableQuery(`organization_application:container_running:count{`+o+`}`)))
	return b.d
}

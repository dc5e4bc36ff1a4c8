package dashboards

// Template variables shared by several dashboards. Server identity comes
// from berth_server_info (one series per exporter), so every variable works
// against a plain Prometheus as well as against berth-placement.

func roleVariable() variable {
	return queryVariable("role", "Server role",
		`label_values(berth_server_info, role)`,
		"Server role from berth-exporter's --server.role: app (deployments) or build (build servers).", true)
}

func organizationVariable() variable {
	return queryVariable("organization", "Organization",
		`label_values(berth_server_info{role=~"$role"}, organization)`,
		"Organization from berth-exporter's --server.organization. All also matches servers without one.", true)
}

func serversVariable() variable {
	return queryVariable("server", "Server",
		`label_values(berth_server_info{role=~"$role", organization=~"$organization"}, server)`,
		"Servers by name (berth-exporter's --server.name).", true)
}

// serverFilter selects server:* recording-rule series by the three
// variables above.
const serverFilter = `server=~"$server", role=~"$role", organization=~"$organization"`

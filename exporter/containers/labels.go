package containers

import (
	"fmt"
	"regexp"
	"strings"
)

// DefaultLabelMap is the default allow-list of Docker labels exported as
// Prometheus labels: Coolify's resource identifiers, plus coolify.managed so
// that quota rules can tell managed containers (managed="true").
const DefaultLabelMap = "coolify.managed=managed," +
	"coolify.applicationId=application_id," +
	"coolify.serviceId=service_id," +
	"coolify.databaseId=database_id," +
	"coolify.type=resource_type," +
	"coolify.projectName=project," +
	"coolify.environmentName=environment," +
	"coolify.pullRequestId=pull_request"

// baseLabels are on every container series, before the mapped labels.
var baseLabels = []string{"id", "name", "image"}

// reservedLabels cannot be the target of a mapping.
var reservedLabels = map[string]bool{"id": true, "name": true, "image": true, "role": true, "state": true, "interface": true, "cpu": true}

var promLabelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// labelMapping turns one Docker label into one Prometheus label.
type labelMapping struct {
	docker string
	prom   string
}

// labelMap is the ordered allow-list of Docker labels to export. Docker
// labels not in it are never exported: they can hold secrets (Coolify puts
// Traefik basic-auth hashes and environment details in labels) and change
// often, each change creating new series.
type labelMap []labelMapping

// parseLabelMap reads "docker.label=prom_label,…". An empty string maps
// nothing.
func parseLabelMap(spec string) (labelMap, error) {
	var out labelMap
	seenDocker := map[string]bool{}
	seenProm := map[string]bool{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		docker, prom, ok := strings.Cut(item, "=")
		docker, prom = strings.TrimSpace(docker), strings.TrimSpace(prom)
		if !ok || docker == "" || prom == "" {
			return nil, fmt.Errorf("label mapping %q: want docker.label=prometheus_label", item)
		}
		if !promLabelName.MatchString(prom) || strings.HasPrefix(prom, "__") {
			return nil, fmt.Errorf("label mapping %q: %q is not a valid Prometheus label name", item, prom)
		}
		if reservedLabels[prom] {
			return nil, fmt.Errorf("label mapping %q: %q is reserved for the exporter's own label", item, prom)
		}
		if seenDocker[docker] {
			return nil, fmt.Errorf("label mapping %q: docker label %q mapped twice", item, docker)
		}
		if seenProm[prom] {
			return nil, fmt.Errorf("label mapping %q: prometheus label %q used twice", item, prom)
		}
		seenDocker[docker], seenProm[prom] = true, true
		out = append(out, labelMapping{docker: docker, prom: prom})
	}
	return out, nil
}

// names are the Prometheus label names in order.
func (m labelMap) names() []string {
	out := make([]string, len(m))
	for i, l := range m {
		out[i] = l.prom
	}
	return out
}

// values are the mapped label values of one container, "" where absent, in
// the order of names.
func (m labelMap) values(labels map[string]string) []string {
	out := make([]string, len(m))
	for i, l := range m {
		// Label values must be UTF-8; Docker does not enforce it.
		out[i] = strings.ToValidUTF8(labels[l.docker], "\uFFFD")
	}
	return out
}

package containers

import (
	"fmt"
	"regexp"
	"strings"
)

// Roles a container can have, in the `role` label.
const (
	RoleApp      = "app"
	RoleDatabase = "database"
	RoleService  = "service"
	RoleBuild    = "build"
	RoleBackup   = "backup"
	RoleInfra    = "infra"
	RoleOther    = "other"
)

// DefaultBuildImagePattern matches Coolify's build helper image from any
// registry, with any tag or digest (ghcr.io/coollabsio/coolify-helper:1.0.8).
const DefaultBuildImagePattern = `(.+/)?coollabsio/coolify-helper([:@].*)?`

// deploymentID is how Coolify names a build container: the deployment's
// 24-character id.
var deploymentID = regexp.MustCompile(`^[a-z0-9]{24}$`)

// infraNames are Coolify's own per-server helpers.
var infraNames = map[string]bool{
	"coolify-proxy":     true,
	"coolify-sentinel":  true,
	"coolify-log-drain": true,
}

// roleRules classify containers by Coolify's conventions.
type roleRules struct {
	buildImage *regexp.Regexp
}

// newRoleRules compiles the build image pattern, anchored at both ends as
// Prometheus anchors relabelling regexes.
func newRoleRules(buildImagePattern string) (roleRules, error) {
	re, err := regexp.Compile("^(?:" + buildImagePattern + ")$")
	if err != nil {
		return roleRules{}, fmt.Errorf("build image pattern %q: %w", buildImagePattern, err)
	}
	return roleRules{buildImage: re}, nil
}

// role decides a container's role. Build helpers carry no Coolify labels,
// so name and image rules come before the coolify.type label.
func (r roleRules) role(name, image string, labels map[string]string) string {
	switch {
	case r.buildImage.MatchString(image) && deploymentID.MatchString(name):
		return RoleBuild
	case strings.HasPrefix(name, "buildx_buildkit_coolify"):
		return RoleBuild
	case strings.HasPrefix(name, "backup-of-"):
		return RoleBackup
	case infraNames[name]:
		return RoleInfra
	}
	switch labels["coolify.type"] {
	case "application":
		return RoleApp
	case "database":
		return RoleDatabase
	case "service":
		return RoleService
	}
	return RoleOther
}

package containers

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/berth-dev/berth/exporter"
)

// Register defines the container collector's flags on the registry's
// application and registers the collector as "containers", enabled by
// default. Its metadata cache starts when the collector is built.
func Register(reg *exporter.Registry) {
	app := reg.App()
	host := app.Flag("collector.containers.docker-host",
		"Docker Engine API address (unix:///path or tcp://host:port); Podman's Docker-compatible socket works too.").
		Default("unix:///var/run/docker.sock").String()
	labelMap := app.Flag("collector.containers.label-map",
		"Docker labels exported as Prometheus labels, as docker.label=prometheus_label pairs separated by commas. No other Docker label is ever exported.").
		Default(DefaultLabelMap).String()
	buildImage := app.Flag("collector.containers.build-image-pattern",
		"Regular expression (anchored) matching build helper images; such a container named by a 24-character deployment id has role=\"build\".").
		Default(DefaultBuildImagePattern).String()
	procfs := app.Flag("collector.containers.procfs",
		"Host /proc mount point, for /proc/<pid>/cgroup and /proc/<pid>/net/dev of containers.").
		Default("/proc").String()
	cgroupfs := app.Flag("collector.containers.cgroupfs",
		"Host cgroup filesystem mount point (v1 controllers or the v2 unified hierarchy).").
		Default("/sys/fs/cgroup").String()
	relist := app.Flag("collector.containers.relist-interval",
		"How often the full container list is refreshed in addition to the events stream.").
		Default("30s").Duration()
	kernelLog := app.Flag("collector.containers.kernel-log",
		"Kernel log device followed for OOM kills (needs root and CAP_SYSLOG); the one source of OOM kills of a container's main process on Podman. Empty: not followed.").
		Default("/dev/kmsg").String()

	reg.Register("containers", true, func(logger *slog.Logger) (exporter.Collector, error) {
		// New gives empty values defaults (for Go callers); a flag set to
		// nothing, or to a path that is not there, is a mistake to report.
		if *buildImage == "" {
			return nil, fmt.Errorf("--collector.containers.build-image-pattern: must not be empty")
		}
		if *relist <= 0 {
			return nil, fmt.Errorf("--collector.containers.relist-interval: must be positive, got %s", *relist)
		}
		for flag, path := range map[string]string{"collector.containers.procfs": *procfs, "collector.containers.cgroupfs": *cgroupfs} {
			if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
				return nil, fmt.Errorf("--%s: %q is not a directory", flag, path)
			}
		}
		return New(Config{
			DockerHost:        *host,
			LabelMap:          *labelMap,
			BuildImagePattern: *buildImage,
			ProcFS:            *procfs,
			CgroupFS:          *cgroupfs,
			RelistInterval:    *relist,
			KernelLog:         *kernelLog,
		}, logger)
	})
}

package system

import (
	"log/slog"

	"github.com/alecthomas/kingpin/v2"

	"github.com/berth-dev/berth/exporter"
	"github.com/shirou/gopsutil/v4/disk"
)

// config is everything the system collectors need once flags are parsed.
type config struct {
	paths               Paths
	filesystem          filesystemOptions
	netdevDeviceExclude string
	netstatFields       string
	usage               usageFunc
	uname               unameFunc
}

// Register defines the system collectors' flags on reg's application and
// registers the collectors cpu, loadavg, meminfo, filesystem, netdev,
// netstat, sockstat, pressure, uname and boottime, all enabled by default.
// Flag names and defaults are node_exporter 1.5's.
func Register(reg *exporter.Registry) {
	app := reg.App()
	cfg := &config{usage: disk.UsageWithContext, uname: systemUname}
	app.Flag("path.procfs", "procfs mountpoint.").Default("/proc").StringVar(&cfg.paths.Proc)
	app.Flag("path.sysfs", "sysfs mountpoint.").Default("/sys").StringVar(&cfg.paths.Sys)
	app.Flag("path.rootfs", "rootfs mountpoint.").Default("/").StringVar(&cfg.paths.Root)
	app.Flag("collector.filesystem.mount-points-exclude",
		"Regexp of mount points to exclude for filesystem collector.").
		Default(defaultMountPointsExclude).StringVar(&cfg.filesystem.MountPointsExclude)
	app.Flag("collector.filesystem.fs-types-exclude",
		"Regexp of filesystem types to exclude for filesystem collector.").
		Default(defaultFSTypesExclude).StringVar(&cfg.filesystem.FSTypesExclude)
	app.Flag("collector.filesystem.mount-timeout",
		"How long to wait for a mount to answer statfs before reporting node_filesystem_device_error 1 for it (and skipping it until the call returns).").
		Default(defaultMountTimeout.String()).DurationVar(&cfg.filesystem.MountTimeout)
	app.Flag("collector.netdev.device-exclude",
		"Regexp of net devices to exclude (empty: none).").
		Default("").StringVar(&cfg.netdevDeviceExclude)
	app.Flag("collector.netstat.fields",
		"Regexp of fields to return for netstat collector.").
		Default(defaultNetstatFields).StringVar(&cfg.netstatFields)

	// The host paths are checked as soon as flags are parsed, so that the
	// error names the flag rather than the first collector to use it.
	app.Action(func(*kingpin.ParseContext) error { return cfg.paths.validate() })

	for _, name := range collectorNames {
		reg.Register(name, true, func(logger *slog.Logger) (exporter.Collector, error) {
			return cfg.newCollector(name, logger)
		})
	}
}

// collectorNames are the collectors this package provides, named like
// node_exporter's.
var collectorNames = []string{
	"boottime", "cpu", "filesystem", "loadavg", "meminfo",
	"netdev", "netstat", "pressure", "sockstat", "uname",
}

// newCollector builds the named collector from parsed flags.
func (cfg *config) newCollector(name string, logger *slog.Logger) (exporter.Collector, error) {
	switch name {
	case "boottime":
		return newBootTimeCollector(cfg.paths)
	case "cpu":
		return newCPUCollector(cfg.paths, logger)
	case "filesystem":
		return newFilesystemCollector(cfg.paths, cfg.filesystem, cfg.usage, logger)
	case "loadavg":
		return &loadavgCollector{env: cfg.paths.gopsutilEnv()}, nil
	case "meminfo":
		return newMeminfoCollector(cfg.paths)
	case "netdev":
		return newNetdevCollector(cfg.paths, cfg.netdevDeviceExclude)
	case "netstat":
		return newNetstatCollector(cfg.paths, cfg.netstatFields)
	case "pressure":
		return newPressureCollector(cfg.paths, logger)
	case "sockstat":
		return newSockstatCollector(cfg.paths)
	case "uname":
		return &unameCollector{uname: cfg.uname}, nil
	}
	panic("unknown system collector " + name)
}

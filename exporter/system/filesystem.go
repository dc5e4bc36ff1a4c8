package system

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	gopsutil "github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/disk"
)

// Defaults of node_exporter 1.5 (upstream; Debian's package patches the
// mount point default to also exclude /run, /mnt and /media).
const (
	defaultMountPointsExclude = `^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`
	defaultFSTypesExclude     = `^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$`
	defaultMountTimeout       = 5 * time.Second
)

var (
	filesystemLabels = []string{"device", "mountpoint", "fstype"}

	fsSizeDesc = prometheus.NewDesc("node_filesystem_size_bytes",
		"Filesystem size in bytes.", filesystemLabels, nil)
	fsFreeDesc = prometheus.NewDesc("node_filesystem_free_bytes",
		"Filesystem free space in bytes.", filesystemLabels, nil)
	fsAvailDesc = prometheus.NewDesc("node_filesystem_avail_bytes",
		"Filesystem space available to non-root users in bytes.", filesystemLabels, nil)
	fsFilesDesc = prometheus.NewDesc("node_filesystem_files",
		"Filesystem total file nodes.", filesystemLabels, nil)
	fsFilesFreeDesc = prometheus.NewDesc("node_filesystem_files_free",
		"Filesystem total free file nodes.", filesystemLabels, nil)
	fsReadOnlyDesc = prometheus.NewDesc("node_filesystem_readonly",
		"Filesystem read-only status.", filesystemLabels, nil)
	fsDeviceErrorDesc = prometheus.NewDesc("node_filesystem_device_error",
		"Whether an error occurred while getting statistics for the given device.", filesystemLabels, nil)
)

// usageFunc is gopsutil's disk.UsageWithContext (one statfs(2)); tests
// replace it to simulate failing or hung filesystems.
type usageFunc func(ctx context.Context, path string) (*disk.UsageStat, error)

// mount is one filesystem to report.
type mount struct {
	Device, MountPoint, FSType string
	ReadOnly                   bool
}

// filesystemOptions are the filesystem collector's flags.
type filesystemOptions struct {
	MountPointsExclude string
	FSTypesExclude     string
	MountTimeout       time.Duration
}

// filesystemCollector exports node_filesystem_* for every mounted filesystem
// not excluded by mount point or type. gopsutil lists the mounts (PID 1's
// mountinfo under --path.procfs, else the reading process's) and stats each
// one (disk.Usage).
//
// A statfs on a dead network mount can block for minutes in the kernel and
// cannot be cancelled. Each statfs therefore runs in its own goroutine; the
// collector waits at most MountTimeout (and never past the scrape deadline),
// reports the mount with node_filesystem_device_error 1, and remembers it as
// stuck. While the hung call has not returned, later scrapes do not start
// another one on the same mount (which would pile up blocked threads); they
// report the error straight away, and stat it again once it returns.
type filesystemCollector struct {
	paths              Paths
	env                gopsutil.EnvMap
	mounts             *mountTable
	mountPointsExclude *matchCache[string]
	fsTypesExclude     *matchCache[string]
	mountTimeout       time.Duration
	usage              usageFunc
	logger             *slog.Logger

	mu sync.Mutex
	// stuck maps a mount point to the done channel of its hung statfs.
	stuck map[string]<-chan struct{}
}

func newFilesystemCollector(paths Paths, opts filesystemOptions, usage usageFunc, logger *slog.Logger) (*filesystemCollector, error) {
	mpExclude, err := regexp.Compile(opts.MountPointsExclude)
	if err != nil {
		return nil, fmt.Errorf("invalid --collector.filesystem.mount-points-exclude %q: %w", opts.MountPointsExclude, err)
	}
	fsExclude, err := regexp.Compile(opts.FSTypesExclude)
	if err != nil {
		return nil, fmt.Errorf("invalid --collector.filesystem.fs-types-exclude %q: %w", opts.FSTypesExclude, err)
	}
	if opts.MountTimeout <= 0 {
		return nil, fmt.Errorf("invalid --collector.filesystem.mount-timeout %s: must be positive", opts.MountTimeout)
	}
	return &filesystemCollector{
		paths:              paths,
		env:                paths.gopsutilEnv(),
		mounts:             &mountTable{paths: paths},
		mountPointsExclude: newMatchCache(mpExclude),
		fsTypesExclude:     newMatchCache(fsExclude),
		mountTimeout:       opts.MountTimeout,
		usage:              usage,
		logger:             logger,
		stuck:              map[string]<-chan struct{}{},
	}, nil
}

// pendingStat is one statfs in flight.
type pendingStat struct {
	mount mount
	done  chan struct{}
	usage *disk.UsageStat
	err   error
	// skipped is set when the mount is still stuck from an earlier scrape.
	skipped bool
}

// Update implements exporter.Collector.
func (c *filesystemCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	ctx = withEnv(ctx, c.env)
	partitions, err := c.mounts.list(ctx)
	if err != nil {
		return err
	}
	mounts := c.selectMounts(partitions)

	pending := make([]*pendingStat, len(mounts))
	for i, m := range mounts {
		p := &pendingStat{mount: m, done: make(chan struct{})}
		pending[i] = p
		if c.stillStuck(m.MountPoint) {
			p.skipped = true
			continue
		}
		go func() {
			defer close(p.done)
			// The call cannot be cancelled (statfs(2) blocks in the
			// kernel), so it gets no deadline; the wait below has one.
			p.usage, p.err = c.usage(context.WithoutCancel(ctx), c.paths.root(p.mount.MountPoint))
		}()
	}

	timer := time.NewTimer(c.statBudget(ctx))
	defer timer.Stop()
	expired := false
	for _, p := range pending {
		m := p.mount
		labels := []string{m.Device, m.MountPoint, m.FSType}
		if p.skipped {
			c.logger.Debug("mount point is still unresponsive, skipping statfs", "mountpoint", m.MountPoint)
			ch <- prometheus.MustNewConstMetric(fsDeviceErrorDesc, prometheus.GaugeValue, 1, labels...)
			continue
		}
		if !expired {
			select {
			case <-p.done:
			case <-timer.C:
				expired = true
			}
		}
		if expired {
			select {
			case <-p.done:
			default:
				c.markStuck(m.MountPoint, p.done)
				c.logger.Warn("statfs did not return in time, reporting device error until it does", "mountpoint", m.MountPoint, "device", m.Device, "fstype", m.FSType)
				ch <- prometheus.MustNewConstMetric(fsDeviceErrorDesc, prometheus.GaugeValue, 1, labels...)
				continue
			}
		}
		if p.err != nil {
			c.logger.Debug("statfs failed", "mountpoint", m.MountPoint, "err", p.err)
			ch <- prometheus.MustNewConstMetric(fsDeviceErrorDesc, prometheus.GaugeValue, 1, labels...)
			continue
		}
		ro := 0.0
		if m.ReadOnly {
			ro = 1
		}
		u := p.usage
		// gopsutil: Total = blocks×bsize, Free = bavail×bsize (available
		// to non-root), Used = (blocks − bfree)×bsize, so node_exporter's
		// free_bytes (bfree×bsize) is Total − Used.
		ch <- prometheus.MustNewConstMetric(fsDeviceErrorDesc, prometheus.GaugeValue, 0, labels...)
		ch <- prometheus.MustNewConstMetric(fsSizeDesc, prometheus.GaugeValue, float64(u.Total), labels...)
		ch <- prometheus.MustNewConstMetric(fsFreeDesc, prometheus.GaugeValue, float64(u.Total-u.Used), labels...)
		ch <- prometheus.MustNewConstMetric(fsAvailDesc, prometheus.GaugeValue, float64(u.Free), labels...)
		ch <- prometheus.MustNewConstMetric(fsFilesDesc, prometheus.GaugeValue, float64(u.InodesTotal), labels...)
		ch <- prometheus.MustNewConstMetric(fsFilesFreeDesc, prometheus.GaugeValue, float64(u.InodesFree), labels...)
		ch <- prometheus.MustNewConstMetric(fsReadOnlyDesc, prometheus.GaugeValue, ro, labels...)
	}
	return nil
}

// selectMounts drops excluded mount points and types and keeps one entry per
// (device, mountpoint, fstype): the same filesystem mounted twice at one
// place would otherwise be a duplicate series.
func (c *filesystemCollector) selectMounts(partitions []disk.PartitionStat) []mount {
	seen := make(map[[3]string]bool, len(partitions))
	var out []mount
	c.mountPointsExclude.begin()
	defer c.mountPointsExclude.end()
	c.fsTypesExclude.begin()
	defer c.fsTypesExclude.end()
	for _, p := range partitions {
		m := mount{
			Device:     p.Device,
			MountPoint: c.paths.stripRoot(p.Mountpoint),
			FSType:     p.Fstype,
			ReadOnly:   slices.Contains(p.Opts, "ro"),
		}
		if c.mountPointsExclude.match(m.MountPoint) {
			continue
		}
		if c.fsTypesExclude.match(m.FSType) {
			continue
		}
		key := [3]string{m.Device, m.MountPoint, m.FSType}
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, m)
	}
	return out
}

// statBudget is how long this scrape waits for statfs calls: the mount
// timeout, but never so long that the scrape deadline passes before the
// collector can report the mounts that did answer.
func (c *filesystemCollector) statBudget(ctx context.Context) time.Duration {
	budget := c.mountTimeout
	if deadline, ok := ctx.Deadline(); ok {
		if left := time.Until(deadline) * 4 / 5; left < budget {
			budget = left
		}
	}
	if budget < 0 {
		budget = 0
	}
	return budget
}

// stillStuck reports whether an earlier statfs on mountPoint is still hung,
// forgetting mounts whose call has returned meanwhile.
func (c *filesystemCollector) stillStuck(mountPoint string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	done, ok := c.stuck[mountPoint]
	if !ok {
		return false
	}
	select {
	case <-done:
		delete(c.stuck, mountPoint)
		c.logger.Info("mount point responds again, resuming statfs", "mountpoint", mountPoint)
		return false
	default:
		return true
	}
}

func (c *filesystemCollector) markStuck(mountPoint string, done <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stuck[mountPoint] = done
}

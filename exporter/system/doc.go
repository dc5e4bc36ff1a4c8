// Package system holds berth-exporter's host collectors: cpu, loadavg,
// meminfo, filesystem, netdev, netstat, sockstat, pressure, uname and
// boottime. Every metric they publish carries exactly the name, type, labels,
// unit and help text node_exporter 1.5 gives it, so dashboards and alert rules
// written for node_exporter work unchanged against Berth.
//
// The collectors read the host through libraries, not parsers of their own
// (one exception: the btime line of /proc/stat, see bootTimeCollector):
//
//   - gopsutil v4 where it gives node_exporter's values exactly: per-CPU
//     times (cpu.Times), load average (load.Avg), the mount table and
//     statfs (disk.Partitions, disk.Usage).
//   - prometheus/procfs, node_exporter's own library, where gopsutil has no
//     reader (PSI, sockstat, /proc/net/netstat and snmp6, sysfs thermal
//     throttles and isolated CPUs) or cannot give node_exporter's series:
//     gopsutil's meminfo folds SReclaimable into Cached, reports absent keys
//     as 0 and misses 17 of the 55 keys a Linux 6.18 kernel reports (procfs
//     misses 3); its net.IOCounters keeps 10 of the 16
//     /proc/net/dev columns. Each collector's comment says which and why.
//   - uname(2) through golang.org/x/sys/unix for node_uname_info: gopsutil's
//     host.Info lacks the version and domainname labels and does much extra
//     work (os-release, virtualization probe, process count).
//
// Host paths (--path.procfs, --path.sysfs, --path.rootfs) reach gopsutil
// through each call's context (Paths.gopsutilEnv, withEnv) and procfs
// through the FS each collector opens on them; nothing is process-wide.
//
// Kept in this package because no library does it: node_exporter's rules on
// top of the data (CPU counters that never go backwards, mount point and fs
// type excludes, --path.rootfs stripped from mount points, hung statfs
// isolation) and caches that keep the per-scrape cost at node_exporter's
// (the mount table is parsed again only when its text changed; regexp
// verdicts and metric descriptors are reused). statfs goes through an
// injected function so fixture tests are deterministic.
package system

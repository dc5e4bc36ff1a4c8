// Package system holds berth-exporter's host collectors: cpu, loadavg,
// meminfo, filesystem, netdev, netstat, sockstat, pressure, uname and
// boottime. Every metric they publish carries exactly the name, type, labels,
// unit and help text node_exporter 1.5 gives it, so dashboards and alert rules
// written for node_exporter work unchanged against Berth.
//
// Why the collectors parse /proc and /sys themselves instead of going through
// gopsutil or prometheus/procfs:
//
//   - Exactness. node_exporter's names come from its own parsing (meminfo keys
//     such as Active(anon) become node_memory_Active_anon_bytes, netstat keys
//     are filtered by a regexp over "Proto_Field"). gopsutil exposes fixed
//     structs with other names and units, so it would lose fields and need a
//     mapping table that drifts from node_exporter.
//   - Host paths. Each collector reads from Paths (--path.procfs, --path.sysfs,
//     --path.rootfs) passed to its constructor; gopsutil resolves host paths
//     from environment variables or context values, which is process-wide
//     state we do not want.
//   - Cost. The files involved are tiny line-oriented formats. Reading each
//     with one read(2) and splitting fields avoids procfs's generic parsing of
//     lines we do not export (the intr line of /proc/stat has thousands of
//     numbers) and gopsutil's extra work (it stats, caches and converts), which
//     keeps CPU per scrape and RSS at or below node_exporter's.
//
// Syscalls (statfs, uname) go through golang.org/x/sys/unix and are injected
// into the collectors that use them, so fixture tests are deterministic.
package system

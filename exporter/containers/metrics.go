package containers

import "github.com/prometheus/client_golang/prometheus"

// descs are the container metric descriptors. Names, units and meanings
// are cAdvisor's so that existing container dashboards work; every series
// carries the same label names (base labels, mapped Docker labels, role).
type descs struct {
	cpuUsage                                         *prometheus.Desc
	cfsPeriods, cfsThrottledPeriods, cfsThrottledSec *prometheus.Desc
	memUsage, memWorkingSet, memRSS, memCache        *prometheus.Desc
	specMemLimit, specCPUQuota, specCPUPeriod        *prometheus.Desc
	specCPUShares                                    *prometheus.Desc
	oomEvents, startTime                             *prometheus.Desc
	netRxBytes, netRxPackets, netRxErrors, netRxDrop *prometheus.Desc
	netTxBytes, netTxPackets, netTxErrors, netTxDrop *prometheus.Desc
	info, restarts, exitCode                         *prometheus.Desc
	buildsActive, kernelLogUp                        *prometheus.Desc
}

func newDescs(labels []string) descs {
	d := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string(nil), labels...), extra...), nil)
	}
	return descs{
		cpuUsage:            d("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", "cpu"),
		cfsPeriods:          d("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals."),
		cfsThrottledPeriods: d("container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals."),
		cfsThrottledSec:     d("container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled."),
		memUsage:            d("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed."),
		memWorkingSet:       d("container_memory_working_set_bytes", "Current working set in bytes (usage minus inactive file cache)."),
		memRSS:              d("container_memory_rss", "Size of RSS (anonymous memory) in bytes."),
		memCache:            d("container_memory_cache", "Number of bytes of page cache memory."),
		specMemLimit:        d("container_spec_memory_limit_bytes", "Memory limit for the container in bytes; 0 when unlimited."),
		specCPUQuota:        d("container_spec_cpu_quota", "CPU quota of the container in microseconds per period; absent when unlimited."),
		specCPUPeriod:       d("container_spec_cpu_period", "CPU period of the container in microseconds."),
		specCPUShares:       d("container_spec_cpu_shares", "CPU share of the container (cgroup v1 shares; derived from cpu.weight on v2)."),
		oomEvents:           d("container_oom_events_total", "Count of out of memory kills of the container's processes across its restarts, since the exporter started watching it; id is always empty."),
		startTime:           d("container_start_time_seconds", "Start time of the container since unix epoch in seconds."),
		netRxBytes:          d("container_network_receive_bytes_total", "Cumulative count of bytes received.", "interface"),
		netRxPackets:        d("container_network_receive_packets_total", "Cumulative count of packets received.", "interface"),
		netRxErrors:         d("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", "interface"),
		netRxDrop:           d("container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", "interface"),
		netTxBytes:          d("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", "interface"),
		netTxPackets:        d("container_network_transmit_packets_total", "Cumulative count of packets transmitted.", "interface"),
		netTxErrors:         d("container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", "interface"),
		netTxDrop:           d("container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", "interface"),
		info:                d("berth_container_info", "Metadata of every container known to the Docker engine, running or not; always 1.", "state"),
		restarts:            d("berth_container_restarts", "Number of times the engine restarted the container (Docker's RestartCount)."),
		exitCode:            d("berth_container_exit_code", "Exit code of the container's last run (0 while running)."),
		buildsActive:        prometheus.NewDesc("berth_builds_active", "Running build containers (role=\"build\").", nil, nil),
		kernelLogUp:         prometheus.NewDesc("berth_kernel_log_up", "Whether the kernel log is followed for OOM kills (1), or cannot be read (0): kills of a container's main process then count only as far as the engine reports them.", nil, nil),
	}
}

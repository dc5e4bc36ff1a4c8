package system

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

// meminfoCollector exports /proc/meminfo as node_memory_<Key>[_bytes], named
// exactly as node_exporter names them, for every key procfs knows and the
// kernel reports.
//
// It reads through procfs rather than gopsutil's mem.VirtualMemory because
// gopsutil cannot give node_exporter's values: it adds SReclaimable into
// Cached, reports 0 for keys the kernel does not have (so absent and zero
// look alike, and node_exporter publishes only present keys), and misses
// 17 of the 55 keys Linux 6.18 reports (AnonPages, Mlocked, DirectMap*, …).
// procfs's pointers say which keys are present, and it is the library
// node_exporter's newer procfs-based meminfo collector reads with. Keys
// procfs does not know are not published: on that kernel KReclaimable,
// FilePmdMapped and Balloon; on 32-bit kernels also HighTotal, HighFree,
// LowTotal and LowFree.
type meminfoCollector struct {
	proc procfs.FS
}

func newMeminfoCollector(paths Paths) (*meminfoCollector, error) {
	fs, err := procfs.NewFS(paths.Proc)
	if err != nil {
		return nil, fmt.Errorf("opening procfs at %s: %w", paths.Proc, err)
	}
	return &meminfoCollector{proc: fs}, nil
}

// meminfoField maps one procfs field to node_exporter's metric suffix: the
// kernel's key with "(x)" turned into "_x", plus "_bytes" for values in kB
// (procfs has converted those to bytes).
type meminfoField struct {
	name string
	get  func(*procfs.Meminfo) *uint64
}

var meminfoFields = []meminfoField{
	{"MemTotal_bytes", func(m *procfs.Meminfo) *uint64 { return m.MemTotalBytes }},
	{"MemFree_bytes", func(m *procfs.Meminfo) *uint64 { return m.MemFreeBytes }},
	{"MemAvailable_bytes", func(m *procfs.Meminfo) *uint64 { return m.MemAvailableBytes }},
	{"Buffers_bytes", func(m *procfs.Meminfo) *uint64 { return m.BuffersBytes }},
	{"Cached_bytes", func(m *procfs.Meminfo) *uint64 { return m.CachedBytes }},
	{"SwapCached_bytes", func(m *procfs.Meminfo) *uint64 { return m.SwapCachedBytes }},
	{"Active_bytes", func(m *procfs.Meminfo) *uint64 { return m.ActiveBytes }},
	{"Inactive_bytes", func(m *procfs.Meminfo) *uint64 { return m.InactiveBytes }},
	{"Active_anon_bytes", func(m *procfs.Meminfo) *uint64 { return m.ActiveAnonBytes }},
	{"Inactive_anon_bytes", func(m *procfs.Meminfo) *uint64 { return m.InactiveAnonBytes }},
	{"Active_file_bytes", func(m *procfs.Meminfo) *uint64 { return m.ActiveFileBytes }},
	{"Inactive_file_bytes", func(m *procfs.Meminfo) *uint64 { return m.InactiveFileBytes }},
	{"Unevictable_bytes", func(m *procfs.Meminfo) *uint64 { return m.UnevictableBytes }},
	{"Mlocked_bytes", func(m *procfs.Meminfo) *uint64 { return m.MlockedBytes }},
	{"SwapTotal_bytes", func(m *procfs.Meminfo) *uint64 { return m.SwapTotalBytes }},
	{"SwapFree_bytes", func(m *procfs.Meminfo) *uint64 { return m.SwapFreeBytes }},
	{"Zswap_bytes", func(m *procfs.Meminfo) *uint64 { return m.ZswapBytes }},
	{"Zswapped_bytes", func(m *procfs.Meminfo) *uint64 { return m.ZswappedBytes }},
	{"Dirty_bytes", func(m *procfs.Meminfo) *uint64 { return m.DirtyBytes }},
	{"Writeback_bytes", func(m *procfs.Meminfo) *uint64 { return m.WritebackBytes }},
	{"AnonPages_bytes", func(m *procfs.Meminfo) *uint64 { return m.AnonPagesBytes }},
	{"Mapped_bytes", func(m *procfs.Meminfo) *uint64 { return m.MappedBytes }},
	{"Shmem_bytes", func(m *procfs.Meminfo) *uint64 { return m.ShmemBytes }},
	{"Slab_bytes", func(m *procfs.Meminfo) *uint64 { return m.SlabBytes }},
	{"SReclaimable_bytes", func(m *procfs.Meminfo) *uint64 { return m.SReclaimableBytes }},
	{"SUnreclaim_bytes", func(m *procfs.Meminfo) *uint64 { return m.SUnreclaimBytes }},
	{"KernelStack_bytes", func(m *procfs.Meminfo) *uint64 { return m.KernelStackBytes }},
	{"PageTables_bytes", func(m *procfs.Meminfo) *uint64 { return m.PageTablesBytes }},
	{"SecPageTables_bytes", func(m *procfs.Meminfo) *uint64 { return m.SecPageTablesBytes }},
	{"NFS_Unstable_bytes", func(m *procfs.Meminfo) *uint64 { return m.NFSUnstableBytes }},
	{"Bounce_bytes", func(m *procfs.Meminfo) *uint64 { return m.BounceBytes }},
	{"WritebackTmp_bytes", func(m *procfs.Meminfo) *uint64 { return m.WritebackTmpBytes }},
	{"CommitLimit_bytes", func(m *procfs.Meminfo) *uint64 { return m.CommitLimitBytes }},
	{"Committed_AS_bytes", func(m *procfs.Meminfo) *uint64 { return m.CommittedASBytes }},
	{"VmallocTotal_bytes", func(m *procfs.Meminfo) *uint64 { return m.VmallocTotalBytes }},
	{"VmallocUsed_bytes", func(m *procfs.Meminfo) *uint64 { return m.VmallocUsedBytes }},
	{"VmallocChunk_bytes", func(m *procfs.Meminfo) *uint64 { return m.VmallocChunkBytes }},
	{"Percpu_bytes", func(m *procfs.Meminfo) *uint64 { return m.PercpuBytes }},
	{"HardwareCorrupted_bytes", func(m *procfs.Meminfo) *uint64 { return m.HardwareCorruptedBytes }},
	{"AnonHugePages_bytes", func(m *procfs.Meminfo) *uint64 { return m.AnonHugePagesBytes }},
	{"FileHugePages_bytes", func(m *procfs.Meminfo) *uint64 { return m.FileHugePagesBytes }},
	{"ShmemHugePages_bytes", func(m *procfs.Meminfo) *uint64 { return m.ShmemHugePagesBytes }},
	{"ShmemPmdMapped_bytes", func(m *procfs.Meminfo) *uint64 { return m.ShmemPmdMappedBytes }},
	{"CmaTotal_bytes", func(m *procfs.Meminfo) *uint64 { return m.CmaTotalBytes }},
	{"CmaFree_bytes", func(m *procfs.Meminfo) *uint64 { return m.CmaFreeBytes }},
	{"Unaccepted_bytes", func(m *procfs.Meminfo) *uint64 { return m.UnacceptedBytes }},
	{"HugePages_Total", func(m *procfs.Meminfo) *uint64 { return m.HugePagesTotal }},
	{"HugePages_Free", func(m *procfs.Meminfo) *uint64 { return m.HugePagesFree }},
	{"HugePages_Rsvd", func(m *procfs.Meminfo) *uint64 { return m.HugePagesRsvd }},
	{"HugePages_Surp", func(m *procfs.Meminfo) *uint64 { return m.HugePagesSurp }},
	{"Hugepagesize_bytes", func(m *procfs.Meminfo) *uint64 { return m.HugepagesizeBytes }},
	{"Hugetlb_bytes", func(m *procfs.Meminfo) *uint64 { return m.HugetlbBytes }},
	{"DirectMap4k_bytes", func(m *procfs.Meminfo) *uint64 { return m.DirectMap4kBytes }},
	{"DirectMap2M_bytes", func(m *procfs.Meminfo) *uint64 { return m.DirectMap2MBytes }},
	{"DirectMap1G_bytes", func(m *procfs.Meminfo) *uint64 { return m.DirectMap1GBytes }},
}

// meminfoDescs are the descriptors of meminfoFields, in the same order;
// every node_memory_* family is a gauge in node_exporter (it would make
// keys ending in "_total" counters, and the kernel has none).
var meminfoDescs = func() []*prometheus.Desc {
	descs := make([]*prometheus.Desc, len(meminfoFields))
	for i, f := range meminfoFields {
		descs[i] = prometheus.NewDesc(namespace+"_memory_"+f.name, "Memory information field "+f.name+".", nil, nil)
	}
	return descs
}()

// Update implements exporter.Collector.
func (c *meminfoCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	m, err := c.proc.Meminfo()
	if err != nil {
		return fmt.Errorf("reading memory info: %w", err)
	}
	for i, f := range meminfoFields {
		if v := f.get(&m); v != nil {
			ch <- prometheus.MustNewConstMetric(meminfoDescs[i], prometheus.GaugeValue, float64(*v))
		}
	}
	return nil
}

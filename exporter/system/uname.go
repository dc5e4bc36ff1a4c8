package system

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

var unameDesc = prometheus.NewDesc("node_uname_info",
	"Labeled system information as provided by the uname system call.",
	[]string{"sysname", "release", "version", "machine", "nodename", "domainname"}, nil)

// unameInfo is what uname(2) reports.
type unameInfo struct {
	SysName, Release, Version, Machine, NodeName, DomainName string
}

// unameFunc reads the running kernel's identity; tests substitute a fixed one.
type unameFunc func() (unameInfo, error)

// systemUname calls uname(2). Like node_exporter it describes the kernel and
// UTS namespace the agent runs in (a container with --uts=host sees the
// host's node name).
func systemUname() (unameInfo, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return unameInfo{}, fmt.Errorf("calling uname: %w", err)
	}
	return unameInfo{
		SysName:    unix.ByteSliceToString(u.Sysname[:]),
		Release:    unix.ByteSliceToString(u.Release[:]),
		Version:    unix.ByteSliceToString(u.Version[:]),
		Machine:    unix.ByteSliceToString(u.Machine[:]),
		NodeName:   unix.ByteSliceToString(u.Nodename[:]),
		DomainName: unix.ByteSliceToString(u.Domainname[:]),
	}, nil
}

// unameCollector exports node_uname_info.
type unameCollector struct {
	uname unameFunc
}

// Update implements exporter.Collector.
func (c *unameCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	u, err := c.uname()
	if err != nil {
		return err
	}
	ch <- prometheus.MustNewConstMetric(unameDesc, prometheus.GaugeValue, 1,
		u.SysName, u.Release, u.Version, u.Machine, u.NodeName, u.DomainName)
	return nil
}

// Package placement is the vocabulary of Berth's placement: resources and
// their parsing, the fleet snapshot, requests, decisions, reasons and
// reservations. It does no I/O and makes no decision: policy, fit,
// schedule, reservation, build and quota do, over these types.
package placement

import (
	"context"
	"time"
)

// Snapshot is the fleet as Prometheus saw it at Taken: every server's
// signals, read from the recording rules in a handful of vector queries.
type Snapshot struct {
	Taken         time.Time
	Servers       map[string]*ServerState
	Organizations map[string]*OrganizationUsage
}

// SnapshotSource reads a fresh Snapshot. Implementations fail (rather than
// return old data) when Prometheus cannot be reached.
type SnapshotSource interface {
	Snapshot(ctx context.Context) (*Snapshot, error)
}

// ServerState is one server's signals. Values are in base units: cores,
// bytes, ratios 0..1. A signal that had no series is listed in Missing by its
// recording rule name and left zero.
type ServerState struct {
	Name         string
	Role         string
	Organization string

	// LastSeen is the timestamp of the server's newest berth_server_info
	// sample; Age is Snapshot.Taken − LastSeen.
	LastSeen time.Time
	Age      time.Duration

	CPU        CPUState
	Memory     MemoryState
	Disk       DiskState
	Network    NetworkState
	Containers ContainerState
	// Applications counts the running managed containers per
	// application_id (server_application:container_running:count); nil
	// when none runs. Confirmed deployment reservations are released once
	// their application shows here (see ReleasingSource).
	Applications map[string]int

	// Missing names the signals (recording rules) that had no value.
	Missing []string
	// CapacityMissing is set when a signal fit cannot decide without (CPU,
	// memory or root filesystem capacity and use) has no value: the
	// snapshot source, which owns the signals' names, says so.
	CapacityMissing bool
	// LastKnown names the signals whose values are the last ones the
	// server published within the last hour, because it publishes none
	// now (it went silent, or a collector fails). Fit refuses such a
	// server as stale; quotas and build loads keep counting these values.
	LastKnown []string
	// ContainerUsage says where the container figures (Containers) come
	// from: current samples, last-known ones, or nowhere. The snapshot
	// source always sets it; the zero value (snapshots built in code)
	// counts as Current.
	ContainerUsage Provenance

	// Silent is set when the server was seen within the last hour but did
	// not answer its latest scrape: its identity rule stopped although its
	// age may still look fresh. Its data is gone, so it counts as stale.
	Silent bool
}

// Provenance says where a server's figures come from.
type Provenance string

// Provenances.
const (
	// Current: the server publishes them now.
	Current Provenance = "current"
	// LastKnown: the server stopped publishing them within the last hour;
	// these are its last values. They keep counting (quotas, build loads)
	// for as long as the server itself is counted.
	LastKnown Provenance = "last_known"
	// Unknown: no value, current or recent. Nothing may assume zero.
	Unknown Provenance = "unknown"
)

// CPUState is CPU capacity and load.
type CPUState struct {
	Cores           float64
	Utilisation     float64 // 5m average, 0..1
	PeakUtilisation float64 // max over 15m, 0..1
	Load1PerCPU     float64
	Load5PerCPU     float64
	Load15PerCPU    float64
}

// MemoryState is memory capacity and use.
type MemoryState struct {
	TotalBytes     float64
	AvailableBytes float64
	PeakUsedBytes  float64 // max of total−available over 15m
}

// DiskState is the root filesystem and the server's own threshold.
type DiskState struct {
	SizeBytes      float64
	AvailableBytes float64
	// ThresholdRatio is the server's disk usage threshold (0..1).
	ThresholdRatio float64
}

// NetworkState is traffic and connections, summed over real devices.
type NetworkState struct {
	ReceiveBytesPerSecond  float64
	TransmitBytesPerSecond float64
	ReceiveBytesTotal      float64
	TransmitBytesTotal     float64
	EstablishedConnections float64
}

// ContainerState is what runs on the server: declared limits and use.
type ContainerState struct {
	Running int
	// LimitedCPUCores and LimitedMemoryBytes sum the limits of containers
	// that declare one; UnlimitedCPU and UnlimitedMemory count the others,
	// which the policy charges with a default request each.
	LimitedCPUCores    float64
	LimitedMemoryBytes float64
	UnlimitedCPU       int
	UnlimitedMemory    int
	UsedCPUCores       float64
	WorkingSetBytes    float64
	BuildsActive       int
	// Managed is the share of the server's organization's quota usage:
	// managed containers (deployed by the PaaS) only.
	Managed ManagedUsage
}

// ManagedUsage is what the managed running containers of one server
// declare: limits summed, and counts of those without a limit.
type ManagedUsage struct {
	LimitedCPUCores    float64
	LimitedMemoryBytes float64
	UnlimitedCPU       int
	UnlimitedMemory    int
}

// OrganizationUsage is one organization's usage summed over its servers
// (OrganizationsOf); reservations are added by the quota logic, not here.
type OrganizationUsage struct {
	Name               string
	Servers            int
	Applications       int
	LimitedCPUCores    float64
	LimitedMemoryBytes float64
	UnlimitedCPU       int
	UnlimitedMemory    int
	// ApplicationIDs lists the distinct application ids, so a check can
	// tell whether a deployment adds a new application.
	ApplicationIDs []string
	// LastKnownServers are servers counted with their last-known usage
	// (they stopped publishing it); UnknownServers are servers whose usage
	// is not known at all. Both sorted.
	LastKnownServers []string
	UnknownServers   []string
}

package system

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// userHZ is the unit of /proc/stat's CPU times. The kernel always reports
// USER_HZ=100 to user space, whatever its internal tick rate; node_exporter
// (through procfs) assumes the same.
const userHZ = 100

// cpuTimes is one CPU's line of /proc/stat, in seconds.
type cpuTimes struct {
	User, Nice, System, Idle, Iowait, IRQ, SoftIRQ, Steal, Guest, GuestNice float64
}

// procStat is the part of /proc/stat the cpu and boottime collectors use.
type procStat struct {
	// CPUs maps the CPU number (cpu3 → 3) to its times. Offline CPUs are
	// absent, so the numbers need not be contiguous.
	CPUs     map[int]cpuTimes
	BootTime float64
	// HasBootTime is false when the btime line is missing.
	HasBootTime bool
}

// parseProcStat parses /proc/stat, keeping only the per-CPU lines and btime.
func parseProcStat(data []byte) (procStat, error) {
	st := procStat{CPUs: map[int]cpuTimes{}}
	// Walk the lines without copying them: only the cpuN and btime lines
	// become strings, the long intr and softirq lines are skipped in place.
	for rest := data; len(rest) > 0; {
		var lineBytes []byte
		lineBytes, rest, _ = bytes.Cut(rest, []byte{'\n'})
		switch {
		case len(lineBytes) > 3 && bytes.HasPrefix(lineBytes, []byte("cpu")) && lineBytes[3] >= '0' && lineBytes[3] <= '9':
			id, times, err := parseCPULine(string(lineBytes))
			if err != nil {
				return procStat{}, err
			}
			st.CPUs[id] = times
		case bytes.HasPrefix(lineBytes, []byte("btime ")):
			line := string(lineBytes)
			v, err := strconv.ParseUint(strings.TrimSpace(line[len("btime "):]), 10, 64)
			if err != nil {
				return procStat{}, fmt.Errorf("parsing btime line %q: %w", line, err)
			}
			st.BootTime = float64(v)
			st.HasBootTime = true
		}
	}
	return st, nil
}

// parseCPULine parses "cpuN user nice system idle iowait irq softirq steal
// guest guest_nice"; older kernels stop after fewer columns.
func parseCPULine(line string) (int, cpuTimes, error) {
	fields := strings.Fields(line)
	if len(fields) < 5 {
		return 0, cpuTimes{}, fmt.Errorf("parsing cpu line %q: want at least 4 values, got %d", line, len(fields)-1)
	}
	id, err := strconv.Atoi(fields[0][3:])
	if err != nil {
		return 0, cpuTimes{}, fmt.Errorf("parsing cpu number in %q: %w", line, err)
	}
	var v [10]float64
	for i, f := range fields[1:] {
		if i >= len(v) {
			break
		}
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, cpuTimes{}, fmt.Errorf("parsing cpu line %q: %w", line, err)
		}
		v[i] = float64(n) / userHZ
	}
	return id, cpuTimes{
		User: v[0], Nice: v[1], System: v[2], Idle: v[3], Iowait: v[4],
		IRQ: v[5], SoftIRQ: v[6], Steal: v[7], Guest: v[8], GuestNice: v[9],
	}, nil
}

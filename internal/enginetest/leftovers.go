package enginetest

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ProcessesWith lists the processes (other than this one) whose
// /proc/<pid>/<file> ("environ" or "cmdline") contains marker: the helper
// processes an engine left behind carry its private directory there.
func ProcessesWith(file string, marker []byte) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil || pid == self {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", entry.Name(), file))
		if err != nil {
			continue
		}
		if bytes.Contains(append(data, 0), marker) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// KillLeftovers waits up to 10 s for the processes ProcessesWith finds to
// exit by themselves, then kills the stragglers, saying so.
func KillLeftovers(t testing.TB, file string, marker []byte) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := ProcessesWith(file, marker)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				t.Logf("enginetest: killing leftover engine process %d", pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(100 * time.Millisecond)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// MountsUnder lists mount points below dir, deepest first.
func MountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var mounts []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	for i, j := 0, len(mounts)-1; i < j; i, j = i+1, j-1 {
		mounts[i], mounts[j] = mounts[j], mounts[i]
	}
	return mounts
}

// RemoveDir unmounts what an engine left mounted below dir (a container
// that could not be removed keeps its shm tmpfs) and removes dir.
func RemoveDir(t testing.TB, dir string) {
	for _, m := range MountsUnder(dir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			t.Logf("enginetest: unmounting %s: %v", m, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Logf("enginetest: removing %s: %v", dir, err)
	}
}

package containers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// kernelLog follows the kernel's log (/dev/kmsg) for the OOM killer's
// summary of each kill, the one source that sees a container's main
// process killed on every engine: Podman 4 reports no OOM at all, and the
// cgroup whose count would show it is removed with the run it ended. The
// kernel writes one summary per kill, naming the killed task's cgroup:
//
//	oom-kill:constraint=CONSTRAINT_MEMCG,…,oom_memcg=/docker/<id>,task_memcg=/docker/<id>,task=sh,pid=4242,uid=0
//
// (kernels before 4.19: "Task in /docker/<id> killed as a result of limit
// of …"). The kernel rate-limits these reports (10 per 5 s host-wide);
// kills beyond that are counted only from the other sources.
type kernelLog struct {
	path   string
	logger *slog.Logger
	kill   func(containerID string)
	// up is 1 while the log is being followed.
	up atomic.Bool
}

// kernelLogRetry is how long to wait before trying to open the log again.
const kernelLogRetry = 30 * time.Second

// run follows the log until ctx ends, from its end (kills before the
// exporter started are not counted), reopening it after a failure.
func (k *kernelLog) run(ctx context.Context) {
	warned := ""
	for ctx.Err() == nil {
		err := k.follow(ctx)
		k.up.Store(false)
		if ctx.Err() != nil {
			return
		}
		if err.Error() != warned {
			k.logger.Warn("cannot follow the kernel log: OOM kills of a container's main process are counted only as far as the engine reports them",
				"err", err, "retry_in", kernelLogRetry)
			warned = err.Error()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(kernelLogRetry):
		}
	}
}

func (k *kernelLog) follow(ctx context.Context) error {
	// Opened through the runtime's poller (a character device), so that
	// closing it ends a blocked read.
	f, err := os.Open(k.path)
	if err != nil {
		return fmt.Errorf("opening kernel log: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer func() {
		if stop() {
			f.Close()
		}
	}()
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return fmt.Errorf("seeking to the end of kernel log %s: %w", k.path, err)
	}
	k.up.Store(true)
	return k.read(f)
}

// read hands the container of every OOM kill summary read from r to kill
// until r fails. /dev/kmsg returns one record per read; records the reader
// was too slow for are lost (EPIPE), and reading goes on after them.
func (k *kernelLog) read(r io.Reader) error {
	buf := make([]byte, 16384) // more than a record's maximum size
	for {
		n, err := r.Read(buf)
		if errors.Is(err, syscall.EPIPE) {
			k.logger.Warn("kernel log records were overwritten before they were read: OOM kills among them count only as far as cgroups and the engine show them", "path", k.path)
			continue
		}
		if err != nil {
			return fmt.Errorf("reading kernel log %s: %w", k.path, err)
		}
		for _, id := range oomKillsInKmsg(buf[:n]) {
			k.kill(id)
		}
	}
}

// oomKillsInKmsg returns, for each OOM kill summary in data (kmsg records,
// "prio,seq,usec,flags;message" lines, continuation lines starting with a
// space), the id of the container whose task was killed; kills outside
// containers are left out.
func oomKillsInKmsg(data []byte) []string {
	var ids []string
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		if len(line) == 0 || line[0] == ' ' {
			continue // a record's key=value continuation
		}
		_, msg, ok := bytes.Cut(line, []byte{';'})
		if !ok {
			continue
		}
		if id := containerIDOf(killedTaskCgroup(msg)); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// killedTaskCgroup is the cgroup of the task an OOM kill summary names, or
// nil when msg is no such summary.
func killedTaskCgroup(msg []byte) []byte {
	if rest, ok := bytes.CutPrefix(msg, []byte("oom-kill:")); ok {
		_, after, ok := bytes.Cut(rest, []byte(",task_memcg="))
		if !ok {
			return nil
		}
		path, _, _ := bytes.Cut(after, []byte(",task="))
		return path
	}
	if rest, ok := bytes.CutPrefix(msg, []byte("Task in ")); ok {
		path, _, ok := bytes.Cut(rest, []byte(" killed as a result of limit of "))
		if ok {
			return path
		}
	}
	return nil
}

// containerIDOf finds a container id (64 hex digits) in a cgroup path, from
// its end: /docker/<id>, /system.slice/docker-<id>.scope,
// /libpod_parent/libpod-<id>, /machine.slice/libpod-<id>.scope/container.
func containerIDOf(path []byte) string {
	for len(path) > 0 {
		elem := path
		if i := bytes.LastIndexByte(path, '/'); i >= 0 {
			elem, path = path[i+1:], path[:i]
		} else {
			path = nil
		}
		run := 0
		for i := 0; i <= len(elem); i++ {
			if i < len(elem) && isHex(elem[i]) {
				run++
				continue
			}
			if run == 64 {
				return string(elem[i-64 : i])
			}
			run = 0
		}
	}
	return ""
}

func isHex(b byte) bool { return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' }

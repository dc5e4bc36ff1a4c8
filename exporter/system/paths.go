package system

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	gopsutil "github.com/shirou/gopsutil/v4/common"
)

// Paths locates the host's pseudo-filesystems and root filesystem. Running
// the agent in a container with the host's /proc, /sys and / mounted under
// other paths only changes these three values.
type Paths struct {
	// Proc is the procfs mount point (--path.procfs).
	Proc string
	// Sys is the sysfs mount point (--path.sysfs).
	Sys string
	// Root is where the host's root filesystem is visible (--path.rootfs).
	Root string
}

// validate refuses host paths that do not exist, naming the flag, so that a
// typo in a container's mount is reported at start rather than as every
// collector failing on every scrape. The procfs must also look like one:
// every procfs has a directory for PID 1.
func (p Paths) validate() error {
	for _, f := range []struct{ flag, dir, probe string }{
		{"path.procfs", p.Proc, "1"},
		{"path.sysfs", p.Sys, ""},
		{"path.rootfs", p.Root, ""},
	} {
		if f.dir == "" {
			return fmt.Errorf("invalid --%s: must not be empty", f.flag)
		}
		info, err := os.Stat(f.dir)
		if err != nil {
			return fmt.Errorf("invalid --%s %q: %w", f.flag, f.dir, err)
		}
		if !info.IsDir() {
			return fmt.Errorf("invalid --%s %q: not a directory", f.flag, f.dir)
		}
		if f.probe == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(f.dir, f.probe)); err != nil {
			return fmt.Errorf("invalid --%s %q: not a procfs mount (%w)", f.flag, f.dir, err)
		}
	}
	return nil
}

// gopsutilEnv returns these paths in the form gopsutil reads them from a
// call's context (see withEnv). gopsutil only falls back to the HOST_PROC…
// environment variables for empty values, which never occur here, so no
// process-wide state is involved.
func (p Paths) gopsutilEnv() gopsutil.EnvMap {
	return gopsutil.EnvMap{
		gopsutil.HostProcEnvKey: p.Proc,
		gopsutil.HostSysEnvKey:  p.Sys,
		gopsutil.HostRootEnvKey: p.Root,
		// gopsutil resolves /dev/mapper/* and /dev/root under HOST_DEV.
		gopsutil.HostDevEnvKey: p.root("/dev"),
		gopsutil.HostEtcEnvKey: p.root("/etc"),
		gopsutil.HostVarEnvKey: p.root("/var"),
		gopsutil.HostRunEnvKey: p.root("/run"),
	}
}

// withEnv returns ctx carrying env (from gopsutilEnv, built once per
// collector) for the gopsutil calls of one scrape.
func withEnv(ctx context.Context, env gopsutil.EnvMap) context.Context {
	return context.WithValue(ctx, gopsutil.EnvKey, env)
}

func (p Paths) proc(elem ...string) string {
	return filepath.Join(append([]string{p.Proc}, elem...)...)
}

// root maps a host path (a mount point as the host sees it) to where this
// process can reach it.
func (p Paths) root(hostPath string) string {
	if p.Root == "" || p.Root == "/" {
		return hostPath // the common case, once per mount and scrape
	}
	return filepath.Join(p.Root, hostPath)
}

// stripRoot turns a mount point seen from inside the container (below
// --path.rootfs) back into the host's path, as node_exporter does, so that
// the mountpoint label is the same whether the agent runs on the host or in
// a container. No library does this: it is node_exporter's own rule.
func (p Paths) stripRoot(mountPoint string) string {
	if p.Root == "" || p.Root == "/" {
		return mountPoint
	}
	root := strings.TrimSuffix(p.Root, "/")
	if mountPoint == root {
		return "/"
	}
	if strings.HasPrefix(mountPoint, root+"/") {
		return strings.TrimPrefix(mountPoint, root)
	}
	return mountPoint
}

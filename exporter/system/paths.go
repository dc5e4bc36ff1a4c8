package system

import (
	"path/filepath"
	"strings"
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

func (p Paths) proc(elem ...string) string {
	return filepath.Join(append([]string{p.Proc}, elem...)...)
}

func (p Paths) sys(elem ...string) string {
	return filepath.Join(append([]string{p.Sys}, elem...)...)
}

// root maps a host path (a mount point as the host sees it) to where this
// process can reach it.
func (p Paths) root(hostPath string) string {
	return filepath.Join(p.Root, hostPath)
}

// stripRoot turns a mount point seen from inside the container (below
// --path.rootfs) back into the host's path, as node_exporter does, so that
// the mountpoint label is the same whether the agent runs on the host or in
// a container.
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

package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/containerd/api/types"
	"golang.org/x/sys/unix"
)

var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":          {false, unix.MS_RDONLY},
	"rw":          {true, unix.MS_RDONLY},
	"bind":        {false, unix.MS_BIND},
	"rbind":       {false, unix.MS_BIND | unix.MS_REC},
	"nosuid":      {false, unix.MS_NOSUID},
	"nodev":       {false, unix.MS_NODEV},
	"noexec":      {false, unix.MS_NOEXEC},
	"noatime":     {false, unix.MS_NOATIME},
	"relatime":    {false, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME},
}

// mountRootfs mounts the snapshot containerd prepared (overlay or bind) at
// target, as runc's shim does, so the module file can be read from it.
func mountRootfs(mounts []*types.Mount, target string) error {
	if len(mounts) == 0 {
		return nil
	}
	if len(mounts) > 1 {
		return fmt.Errorf("rootfs: %d mounts given, only one is supported", len(mounts))
	}
	m := mounts[0]
	if err := os.MkdirAll(target, 0o711); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	var flags uintptr
	var data []string
	for _, o := range m.Options {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		data = append(data, o)
	}
	typ := m.Type
	if flags&unix.MS_BIND != 0 {
		typ = ""
	}
	if err := unix.Mount(m.Source, target, typ, flags&^unix.MS_RDONLY, strings.Join(data, ",")); err != nil {
		return fmt.Errorf("mount rootfs (%s) at %s: %w", m.Type, target, err)
	}
	// A read-only bind needs a remount; overlay takes "ro" at mount time.
	if flags&unix.MS_RDONLY != 0 {
		if err := unix.Mount("", target, "", flags|unix.MS_REMOUNT, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("remount rootfs read-only: %w", err)
		}
	}
	return nil
}

// unmountRootfs unmounts target if it is mounted; EINVAL means it is not.
func unmountRootfs(target string) error {
	for i := 0; i < 10; i++ {
		err := unix.Unmount(target, 0)
		if err == nil {
			continue // stacked mounts: unmount until none is left
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if errors.Is(err, unix.EBUSY) {
			return unix.Unmount(target, unix.MNT_DETACH)
		}
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

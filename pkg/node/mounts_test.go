package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// RemoveRunDir unmounts dead sandboxes' shm, keeps a run dir while
// anything else is mounted under it, and removes it, sockets and all, once
// nothing is.
func TestRemoveRunDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	sandboxes := filepath.Join(dir, "containerd", "sandboxes")
	shm := filepath.Join(sandboxes, "abc", "shm")
	busy := filepath.Join(dir, "containerd", "rootfs")
	for _, d := range []string{shm, busy} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatalf("mount (the test needs root): %v", err)
		}
		t.Cleanup(func() { _ = unix.Unmount(d, unix.MNT_DETACH) })
	}
	err := RemoveRunDir(dir, sandboxes)
	if err == nil || !strings.Contains(err.Error(), "1 mounts still under "+dir) {
		t.Fatalf("with a mount under it: %v", err)
	}
	if _, err := os.Stat(busy); err != nil {
		t.Fatalf("a busy run dir was touched: %v", err)
	}
	if m, _ := mountsUnder(sandboxes); len(m) != 0 {
		t.Fatalf("a dead sandbox's shm is still mounted: %v", m)
	}
	if err := unix.Unmount(busy, 0); err != nil {
		t.Fatal(err)
	}
	if err := RemoveRunDir(dir, sandboxes); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("run dir still there: %v", err)
	}
	if err := RemoveRunDir(dir, sandboxes); err != nil {
		t.Fatalf("a run dir already gone: %v", err)
	}
}

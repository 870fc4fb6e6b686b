package node

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// UnmountAll detaches every mount at or below root, deepest first. The
// kubelet bind-mounts its root directory onto itself and mounts pod volumes
// under it; left mounted after the server stops, they make the data dir
// impossible to delete. The kubelet mounts them again at the next start.
func UnmountAll(root string) error {
	points, err := mountsUnder(root)
	if err != nil {
		return err
	}
	// Deeper paths first, so a parent is never busy with its children.
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var failed []string
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			failed = append(failed, fmt.Sprintf("%s: %v", p, err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("unmount under %s: %s", root, strings.Join(failed, "; "))
	}
	return nil
}

// mountsUnder lists the mount points at or below root from mountinfo.
func mountsUnder(root string) ([]string, error) {
	root = filepath.Clean(root)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMountPath(fields[4])
		if p == root || strings.HasPrefix(p, root+"/") {
			out = append(out, p)
		}
	}
	return out, sc.Err()
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// RemoveRunDir removes a stopped node's run dir (containerd's state, the
// sockets, CDI specs), which every start rebuilds: left behind, the run
// dirs of data dirs deleted since pile up in /run. It first unmounts the
// pod sandboxes' /dev/shm under sandboxesDir: containerd unmounts one when
// it stops a running sandbox, never for a sandbox that died with a killed
// generation, whose mount would otherwise outlive every later stop. While
// anything else is still mounted under the run dir (a container that
// outlived the stop) it is left for the next start, which cleans up first.
func RemoveRunDir(dir, sandboxesDir string) error {
	if err := UnmountAll(sandboxesDir); err != nil {
		return err
	}
	points, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	if len(points) > 0 {
		return fmt.Errorf("%d mounts still under %s (first %s): left for the next start", len(points), dir, points[0])
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove run dir: %w", err)
	}
	return nil
}

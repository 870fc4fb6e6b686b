package node

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// RemovePodCgroups removes the cgroups the kubelet made for the given pods
// (kubepods/[QOS/]pod<UID> in every hierarchy, cgroupfs naming), once their
// containers are gone: the kubelet removes a pod's cgroup only when the pod
// is deleted, not when the node stops, and recreates it at the next start.
// A cgroup that still holds a process is left alone (rmdir refuses it).
func RemovePodCgroups(root string, uids map[string]bool) error {
	if len(uids) == 0 {
		return nil
	}
	var dirs []string
	hierarchies, _ := filepath.Glob(filepath.Join(root, "*", "kubepods"))
	unified := filepath.Join(root, "kubepods") // cgroup v2
	if _, err := os.Stat(unified); err == nil {
		hierarchies = append(hierarchies, unified)
	}
	for _, h := range hierarchies {
		_ = filepath.WalkDir(h, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if name := d.Name(); strings.HasPrefix(name, "pod") && uids[strings.TrimPrefix(name, "pod")] {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	var errs []error
	for _, pod := range dirs {
		// Children (containers) before their parent.
		var tree []string
		_ = filepath.WalkDir(pod, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				tree = append(tree, p)
			}
			return nil
		})
		sort.Slice(tree, func(i, j int) bool { return len(tree[i]) > len(tree[j]) })
		for _, dir := range tree {
			if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// CgroupRoot is where the cgroup hierarchies are mounted.
const CgroupRoot = "/sys/fs/cgroup"

// RemovePodCgroups removes the pod cgroups the kubelet made
// (kubepods/[QOS/]pod<UID> in every hierarchy, cgroupfs naming) that hold no
// process any more. The kubelet removes a pod's cgroup only some time after
// the pod is deleted, and never when the node stops; it recreates them at
// the next start. Call it once the pods are stopped and the kubelet can no
// longer start them (its loops outlive its Run, so: last). A cgroup that
// still holds a process is left alone: rmdir refuses it, and the error is
// returned. parent is the kubelet's cgroup root ("" for /).
func RemovePodCgroups(root, parent string) error {
	var pods []string
	for _, pattern := range []string{"*/kubepods/pod*", "*/kubepods/*/pod*", "kubepods/pod*", "kubepods/*/pod*"} {
		if parent != "" {
			pattern = strings.Replace(pattern, "kubepods", strings.Trim(parent, "/")+"/kubepods", 1)
		}
		found, _ := filepath.Glob(filepath.Join(root, pattern))
		pods = append(pods, found...)
	}
	var errs []error
	for _, pod := range pods {
		errs = append(errs, removeTree(pod))
	}
	return errors.Join(errs...)
}

// removeTree removes the cgroup dir top and every cgroup below it, children
// (containers) before their parents: rmdir only takes empty cgroups.
func removeTree(top string) error {
	var tree []string
	_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			tree = append(tree, p)
		}
		return nil
	})
	sort.Slice(tree, func(i, j int) bool { return len(tree[i]) > len(tree[j]) })
	var errs []error
	for _, dir := range tree {
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// EnsureCgroup creates parent (a kubelet --cgroup-root) in every cgroup
// hierarchy: the kubelet refuses a root that does not exist.
func EnsureCgroup(parent string) error {
	if _, err := os.Stat(filepath.Join(CgroupRoot, "cgroup.controllers")); err == nil {
		// cgroup v2: one hierarchy.
		if err := os.MkdirAll(filepath.Join(CgroupRoot, parent), 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", parent, err)
		}
		return nil
	}
	entries, err := os.ReadDir(CgroupRoot)
	if err != nil {
		return fmt.Errorf("list cgroup hierarchies: %w", err)
	}
	for _, e := range entries {
		// Mounted hierarchies are directories; cpu,cpuacct-style names
		// are symlinks to one of them.
		if !e.IsDir() {
			continue
		}
		if err := os.MkdirAll(filepath.Join(CgroupRoot, e.Name(), parent), 0o755); err != nil {
			return fmt.Errorf("create cgroup %s in %s: %w", parent, e.Name(), err)
		}
	}
	return nil
}

// RemoveCgroup removes parent (a kubelet --cgroup-root of its own) from
// every hierarchy once its pods are gone: the kubelet leaves its QoS
// cgroups behind. Cgroups that still hold a process stay, with an error.
func RemoveCgroup(parent string) error {
	dirs, _ := filepath.Glob(filepath.Join(CgroupRoot, "*", strings.Trim(parent, "/")))
	if d := filepath.Join(CgroupRoot, strings.Trim(parent, "/")); len(dirs) == 0 {
		dirs = []string{d}
	}
	var errs []error
	for _, top := range dirs {
		errs = append(errs, removeTree(top))
	}
	return errors.Join(errs...)
}

package node

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
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
// returned.
func RemovePodCgroups(root string) error {
	var pods []string
	for _, pattern := range []string{"*/kubepods/pod*", "*/kubepods/*/pod*", "kubepods/pod*", "kubepods/*/pod*"} {
		found, _ := filepath.Glob(filepath.Join(root, pattern))
		pods = append(pods, found...)
	}
	var errs []error
	for _, pod := range pods {
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

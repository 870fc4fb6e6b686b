// Package cdiwrap applies CDI devices to containers for container runtimes
// that ignore the CRI CDIDevices field (containerd 1.6).
//
// The DRA driver records, per pod UID, which CDI devices each container of
// the pod was granted (PodDevices files in a "pod dir"). Wrap is a runc
// wrapper: containerd's runc shim runs it instead of runc (the runtime
// option BinaryName); on `create` it finds the pod and container in the CRI
// annotations of the bundle's config.json, injects the recorded CDI devices
// with the upstream CDI library, and then execs the real runc with the
// unchanged arguments. Every other runc command passes straight through,
// except `exec`, whose process gets the environment that create injected.
//
// The package depends only on the CDI library and the OCI runtime spec, so
// the wrapper stays cheap to start.
package cdiwrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/strata-dev/strata/pkg/fileutil"
)

// PodDevices records the CDI devices that each container of one pod gets.
type PodDevices struct {
	PodUID    string `json:"podUID"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Claims maps a ResourceClaim UID to container name to the
	// fully-qualified CDI device IDs ("gpu.strata.dev/gpu=<name>") that the
	// container gets from that claim.
	Claims map[string]map[string][]string `json:"claims"`
}

// DevicesFor returns the CDI devices of one container, each once, in a
// stable order (by claim UID, then as recorded).
func (p *PodDevices) DevicesFor(container string) []string {
	if p == nil {
		return nil
	}
	uids := make([]string, 0, len(p.Claims))
	for uid := range p.Claims {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	var ids []string
	for _, uid := range uids {
		for _, id := range p.Claims[uid][container] {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// PodFile is the file holding a pod's PodDevices.
func PodFile(dir, podUID string) string {
	return filepath.Join(dir, podUID+".json")
}

// ReadPod reads a pod's PodDevices; it returns nil and no error when the pod
// has none.
func ReadPod(dir, podUID string) (*PodDevices, error) {
	if err := checkUID(podUID); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(PodFile(dir, podUID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p PodDevices
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", PodFile(dir, podUID), err)
	}
	return &p, nil
}

// WritePod stores a pod's PodDevices atomically, or removes the file when no
// claim is left.
func WritePod(dir string, p *PodDevices) error {
	if err := checkUID(p.PodUID); err != nil {
		return err
	}
	file := PodFile(dir, p.PodUID)
	if len(p.Claims) == 0 {
		if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return fileutil.WriteAtomic(file, data, 0o644)
}

func checkUID(uid string) error {
	if uid == "" || strings.ContainsAny(uid, `/\`) || strings.HasPrefix(uid, ".") {
		return fmt.Errorf("bad pod UID %q", uid)
	}
	return nil
}

// ListPods reads every PodDevices file in dir.
func ListPods(dir string) ([]*PodDevices, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pods []*PodDevices
	for _, e := range entries {
		uid, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() || strings.HasPrefix(uid, ".") {
			continue
		}
		p, err := ReadPod(dir, uid)
		if err != nil {
			return nil, err
		}
		if p != nil {
			pods = append(pods, p)
		}
	}
	return pods, nil
}

// findPod looks a container's pod up by UID, or by namespace and name when
// the runtime did not pass the UID.
func findPod(dir, uid, namespace, name string) (*PodDevices, error) {
	if uid != "" {
		return ReadPod(dir, uid)
	}
	if namespace == "" || name == "" {
		return nil, nil
	}
	pods, err := ListPods(dir)
	if err != nil {
		return nil, err
	}
	for _, p := range pods {
		if p.Namespace == namespace && p.Name == name {
			return p, nil
		}
	}
	return nil, nil
}

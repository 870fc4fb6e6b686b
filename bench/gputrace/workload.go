// The replays' input: the arrival sequence and host order drawn as the
// paper's simulator draws them, and the Node, Pod and ResourceClaim
// objects a trace node or task becomes.

package main

import (
	"fmt"
	mrand "math/rand"
	"sort"
	"strconv"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/strata-dev/strata/pkg/gpu"
)

// Workload builds the arrival sequence and the host tie-break order of the
// paper's simulator (hkust-adsl/kubernetes-scheduler-simulator, Simulate,
// SortClusterPods, tuneUpPods/tuneDownPods, syncClusterResourceList) from
// one Go math/rand (v1) stream seeded with the seed, in the same order of
// draws: one Int (a debug log's argument), the trace pods sorted by name and
// shuffled, then copies of pods drawn uniformly from the name-sorted trace
// and appended (not shuffled) until the GPU demand would pass tune x
// capacity (the stop test compares the drawn pod's per-GPU request, as the
// simulator does), or random pods removed while above it; last a
// permutation of the name-sorted nodes. The simulator prefixes each node
// name with its index in that permutation ("%04d-") and its patched
// selectHost keeps the smallest name among equal scores, so rank[node] is
// that index and the lowest rank wins a tie.
//
// The simulator's informers run concurrently and may draw from the same
// global source before the permutation, so its node order is the same
// procedure but not necessarily the same permutation for a seed.
func Workload(pods []TracePod, nodes []TraceNode, gpuCap int64, tune float64, seed int64) (work []TracePod, rank map[string]int) {
	r := mrand.New(mrand.NewSource(seed))
	_ = r.Int()
	sorted := append([]TracePod(nil), pods...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	work = append([]TracePod(nil), sorted...)
	r.Shuffle(len(work), func(i, j int) { work[i], work[j] = work[j], work[i] })
	var total int64
	for _, p := range work {
		total += p.Task.GPUTotal()
	}
	target := tune * float64(gpuCap)
	if float64(total) > target {
		for float64(total) > target && len(work) > 0 {
			i := r.Intn(len(work))
			total -= work[i].Task.GPUTotal()
			work = append(work[:i], work[i+1:]...)
		}
	} else if float64(total) < target && len(sorted) > 0 {
		for i := 0; ; i++ {
			p := sorted[r.Intn(len(sorted))]
			if float64(total+p.Task.GPUMilli) > target {
				break
			}
			p.Name += "-tuned-" + strconv.Itoa(i)
			total += p.Task.GPUTotal()
			work = append(work, p)
		}
	}
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	sort.Strings(names)
	perm := r.Perm(len(names))
	rank = make(map[string]int, len(names))
	for i, n := range names {
		rank[n] = perm[i]
	}
	return work, rank
}

const namespace = "replay"

func makeNode(n TraceNode) *v1.Node {
	rl := v1.ResourceList{
		v1.ResourceCPU:    *resource.NewMilliQuantity(n.CPU, resource.DecimalSI),
		v1.ResourceMemory: *resource.NewQuantity(n.MemMiB<<20, resource.BinarySI),
		v1.ResourcePods:   *resource.NewQuantity(100000, resource.DecimalSI),
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: types.UID("node-" + n.Name), Labels: map[string]string{"kubernetes.io/hostname": n.Name}},
		Status:     v1.NodeStatus{Capacity: rl, Allocatable: rl, Phase: v1.NodeRunning},
	}
}

// makePod expresses a trace task the way the product does: CPU and memory
// as container requests, GPUs as a ResourceClaim of class gpu.strata.dev.
func makePod(i int, p TracePod) (*v1.Pod, *resourceapi.ResourceClaim) {
	name := fmt.Sprintf("p%05d-%s", i, p.Name)
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: types.UID(name)},
		Spec: v1.PodSpec{
			SchedulerName: v1.DefaultSchedulerName,
			Containers: []v1.Container{{Name: "main", Image: "pause", Resources: v1.ResourceRequirements{Requests: v1.ResourceList{
				v1.ResourceCPU:    *resource.NewMilliQuantity(p.Task.CPU, resource.DecimalSI),
				v1.ResourceMemory: *resource.NewQuantity(p.Task.Mem<<20, resource.BinarySI),
			}}}},
		},
	}
	if p.Task.NumGPU == 0 {
		return pod, nil
	}
	claimName := name + "-gpu"
	req := resourceapi.DeviceRequest{Name: "gpu", Exactly: &resourceapi.ExactDeviceRequest{
		DeviceClassName: gpu.DriverName,
		AllocationMode:  resourceapi.DeviceAllocationModeExactCount,
		Count:           int64(p.Task.NumGPU),
	}}
	if p.Task.IsShare() || p.Task.GPUMem > 0 {
		// GPUMem is in bytes (the trace has none; tests set it).
		capacity := map[resourceapi.QualifiedName]resource.Quantity{}
		if p.Task.IsShare() {
			capacity[gpu.CapacityCompute] = *resource.NewQuantity(p.Task.GPUMilli, resource.DecimalSI)
		}
		if p.Task.GPUMem > 0 {
			capacity[gpu.CapacityMemory] = *resource.NewQuantity(p.Task.GPUMem, resource.BinarySI)
		}
		req.Exactly.Capacity = &resourceapi.CapacityRequirements{Requests: capacity}
	}
	if p.Task.Models != "" {
		req.Exactly.Selectors = []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{Expression: gpu.ModelSelector(splitModels(p.Task.Models))}}}
	}
	claim := &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: claimName, Namespace: namespace, UID: types.UID(claimName)},
		Spec:       resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{req}}},
	}
	if p.Task.NumGPU > 1 {
		uuid := gpu.Qualified(gpu.AttrUUID)
		claim.Spec.Devices.Constraints = []resourceapi.DeviceConstraint{{Requests: []string{"gpu"}, DistinctAttribute: &uuid}}
	}
	pod.Spec.ResourceClaims = []v1.PodResourceClaim{{Name: "gpu", ResourceClaimName: &claimName}}
	pod.Spec.Containers[0].Resources.Claims = []v1.ResourceClaim{{Name: "gpu"}}
	return pod, claim
}

func splitModels(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '|' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

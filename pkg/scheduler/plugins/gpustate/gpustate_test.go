package gpustate

import (
	"context"
	"fmt"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/dynamic-resource-allocation/structured"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/pkg/gpu"
	"github.com/strata-dev/strata/pkg/gpushare"
)

func nodeInfo(name string, cpuMilli, memBytes int64, pods ...*v1.Pod) fwk.NodeInfo {
	rl := v1.ResourceList{
		v1.ResourceCPU:    *resource.NewMilliQuantity(cpuMilli, resource.DecimalSI),
		v1.ResourceMemory: *resource.NewQuantity(memBytes, resource.BinarySI),
		v1.ResourcePods:   *resource.NewQuantity(110, resource.DecimalSI),
	}
	ni := framework.NewNodeInfo(pods...)
	ni.SetNode(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: v1.NodeStatus{Allocatable: rl, Capacity: rl}})
	return ni
}

// gpuSlice is the ResourceSlice the Strata DRA driver publishes.
func gpuSlice(node, model string, n int) *resourceapi.ResourceSlice {
	s := &resourceapi.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{Name: node + "-gpu"},
		Spec: resourceapi.ResourceSliceSpec{
			Driver:   gpu.DriverName,
			Pool:     resourceapi.ResourcePool{Name: node, ResourceSliceCount: 1},
			NodeName: ptr.To(node),
		},
	}
	// Listed in reverse to check that the index attribute, not the order, places a GPU.
	for i := n - 1; i >= 0; i-- {
		s.Spec.Devices = append(s.Spec.Devices, resourceapi.Device{
			Name: fmt.Sprintf("gpu-%d", i),
			Attributes: map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
				gpu.AttrModel: {StringValue: ptr.To(model)},
				gpu.AttrUUID:  {StringValue: ptr.To(fmt.Sprintf("GPU-%s-%d", node, i))},
				gpu.AttrIndex: {IntValue: ptr.To(int64(i))},
			},
			Capacity: map[resourceapi.QualifiedName]resourceapi.DeviceCapacity{
				gpu.CapacityCompute: {Value: resource.MustParse("1000")},
				gpu.CapacityMemory:  {Value: resource.MustParse("16Gi")},
			},
			AllowMultipleAllocations: ptr.To(true),
		})
	}
	return s
}

func TestNodesFromSlices(t *testing.T) {
	busy := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "busy"}, Spec: v1.PodSpec{NodeName: "a", Containers: []v1.Container{{
		Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("3"), v1.ResourceMemory: resource.MustParse("1Gi")}}}}}}
	nodes := []fwk.NodeInfo{nodeInfo("a", 16000, 64<<30, busy), nodeInfo("b", 8000, 32<<30), nodeInfo("cpu", 4000, 8<<30), nodeInfo("nomem", 4000, 8<<30)}
	noMem := gpuSlice("nomem", "T4", 2)
	delete(noMem.Spec.Devices[0].Capacity, gpu.CapacityMemory) // gpu-1 publishes no memory
	slicesIn := []*resourceapi.ResourceSlice{
		noMem,
		gpuSlice("a", "T4", 4),
		gpuSlice("b", "V100M32", 2),
		gpuSlice("elsewhere", "A10", 1), // node not among the candidates
		{Spec: resourceapi.ResourceSliceSpec{Driver: "other.dev", NodeName: ptr.To("a"), Pool: resourceapi.ResourcePool{Name: "x"},
			Devices: []resourceapi.Device{{Name: "nic"}}}},
	}
	id := func(node string, i int) structured.DeviceID {
		return structured.MakeDeviceID(gpu.DriverName, node, fmt.Sprintf("gpu-%d", i))
	}
	use := map[structured.DeviceID]deviceUsage{
		id("b", 1): {whole: 1}, // allocated without consumable capacity: fully used
		id("a", 0): {compute: 250, mem: 4 << 30},
		id("a", 2): {compute: 1000},               // whole GPU through a shareable device
		id("a", 3): {compute: 470, mem: 20 << 30}, // more than it has: none left
	}
	got := nodesFromSlices(nodes, (&sliceCache{}).get(slicesIn), func(d structured.DeviceID) deviceUsage { return use[d] })
	want := map[string]gpushare.Node{
		"a": {Name: "a", Model: "T4", CPUFree: 13000, MemFree: 63 << 30, GPUFree: []int64{750, 1000, 0, 530},
			GPUMemFree: []int64{12 << 30, 16 << 30, 16 << 30, 0}, GPUMemMax: 16 << 30},
		"b":   {Name: "b", Model: "V100M32", CPUFree: 8000, MemFree: 32 << 30, GPUFree: []int64{1000, 0}, GPUMemFree: []int64{16 << 30, 0}, GPUMemMax: 16 << 30},
		"cpu": {Name: "cpu", CPUFree: 4000, MemFree: 8 << 30},
		// A GPU without memory capacity: no limit there, no largest memory.
		"nomem": {Name: "nomem", Model: "T4", CPUFree: 4000, MemFree: 8 << 30, GPUFree: []int64{1000, 1000}, GPUMemFree: []int64{16 << 30, gpushare.NoGPUMemLimit}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d nodes: %v", len(got), got)
	}
	for k, w := range want {
		g := got[k]
		if g.Name != w.Name || g.Model != w.Model || g.CPUFree != w.CPUFree || g.MemFree != w.MemFree || !slices.Equal(g.GPUFree, w.GPUFree) || !slices.Equal(g.GPUMemFree, w.GPUMemFree) || g.GPUMemMax != w.GPUMemMax {
			t.Errorf("node %s = %v, want %v", k, g, w)
		}
	}
}

func claim(name string, req resourceapi.ExactDeviceRequest) *resourceapi.ResourceClaim {
	return &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec:       resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{{Name: "gpu", Exactly: &req}}}},
	}
}

func TestPodTask(t *testing.T) {
	compute := func(v int64) *resourceapi.CapacityRequirements {
		return &resourceapi.CapacityRequirements{Requests: map[resourceapi.QualifiedName]resource.Quantity{gpu.CapacityCompute: *resource.NewQuantity(v, resource.DecimalSI)}}
	}
	store := NewStore()
	store.AddClaim(claim("share", resourceapi.ExactDeviceRequest{DeviceClassName: gpu.DriverName, AllocationMode: resourceapi.DeviceAllocationModeExactCount, Count: 1, Capacity: compute(250)}))
	store.AddClaim(claim("four", resourceapi.ExactDeviceRequest{DeviceClassName: gpu.DriverName, AllocationMode: resourceapi.DeviceAllocationModeExactCount, Count: 4,
		Selectors: []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{Expression: gpu.ModelSelector([]string{"V100M16", "V100M32"})}}}}))
	store.AddClaim(claim("nic", resourceapi.ExactDeviceRequest{DeviceClassName: "nic.example.com"}))
	withMem := compute(100)
	withMem.Requests[gpu.CapacityMemory] = resource.MustParse("40Gi")
	store.AddClaim(claim("share-mem", resourceapi.ExactDeviceRequest{DeviceClassName: gpu.DriverName, Capacity: withMem}))
	pod := func(claimName string, tmpl bool) *v1.Pod {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: v1.PodSpec{Containers: []v1.Container{{
			Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("1Mi")}}}}}}
		if claimName == "" {
			return p
		}
		if tmpl {
			p.Spec.ResourceClaims = []v1.PodResourceClaim{{Name: "gpu", ResourceClaimTemplateName: ptr.To("t")}}
			p.Status.ResourceClaimStatuses = []v1.PodResourceClaimStatus{{Name: "gpu", ResourceClaimName: ptr.To(claimName)}}
		} else {
			p.Spec.ResourceClaims = []v1.PodResourceClaim{{Name: "gpu", ResourceClaimName: ptr.To(claimName)}}
		}
		return p
	}
	cases := []struct {
		name   string
		pod    *v1.Pod
		want   gpushare.Task
		hasGPU bool
		err    bool
	}{
		{"cpu only", pod("", false), gpushare.Task{CPU: 2000, Mem: 1 << 20}, false, false},
		{"share", pod("share", false), gpushare.Task{CPU: 2000, Mem: 1 << 20, NumGPU: 1, GPUMilli: 250}, true, false},
		{"four whole with models, via template", pod("four", true), gpushare.Task{CPU: 2000, Mem: 1 << 20, NumGPU: 4, GPUMilli: 1000, Models: "V100M16|V100M32"}, true, false},
		{"other driver", pod("nic", false), gpushare.Task{CPU: 2000, Mem: 1 << 20}, false, false},
		{"share with GPU memory", pod("share-mem", false), gpushare.Task{CPU: 2000, Mem: 1 << 20, NumGPU: 1, GPUMilli: 100, GPUMem: 40 << 30}, true, false},
		{"missing claim", pod("gone", false), gpushare.Task{}, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, has, err := PodTask(c.pod, store.Claims)
			if (err != nil) != c.err {
				t.Fatalf("err = %v", err)
			}
			if err == nil && (got != c.want || has != c.hasGPU) {
				t.Errorf("PodTask = %v %v, want %v %v", got, has, c.want, c.hasGPU)
			}
		})
	}
}

func TestStoreSource(t *testing.T) {
	s := NewStore()
	s.AddNode("a", "T4", 2)
	if err := s.Update("a", func(n *gpushare.Node) error {
		return gpushare.Place(n, gpushare.Task{NumGPU: 1, GPUMilli: 300}, []int{1})
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Nodes(context.Background(), []fwk.NodeInfo{nodeInfo("a", 4000, 1<<30)})
	if err != nil {
		t.Fatal(err)
	}
	if n := got["a"]; n.Model != "T4" || n.CPUFree != 4000 || !slices.Equal(n.GPUFree, []int64{1000, 700}) {
		t.Errorf("store node = %v", n)
	}
}

// TestSliceCache checks that a ResourceSlice object is parsed once, that a
// replaced object (the informer's way to change one) is parsed again, and
// that slices gone from the list are forgotten.
func TestSliceCache(t *testing.T) {
	c := &sliceCache{}
	a, b := gpuSlice("a", "T4", 2), gpuSlice("b", "T4", 1)
	first := c.get([]*resourceapi.ResourceSlice{a, b})
	if len(first) != 2 || len(first["a"].gpus) != 2 || first["a"].size != 2 || len(first["b"].gpus) != 1 {
		t.Fatalf("first read: %+v", first)
	}
	// The same objects, in another order: the cached grouping, even though
	// a test (not the informer) changed one in place.
	a.Spec.Devices = a.Spec.Devices[:1]
	if got := c.get([]*resourceapi.ResourceSlice{b, a}); len(got["a"].gpus) != 2 || got["a"] != first["a"] {
		t.Errorf("same objects parsed again: %+v, want the cached grouping", got)
	}
	a2 := gpuSlice("a", "T4", 4)
	got := c.get([]*resourceapi.ResourceSlice{a2})
	if len(got) != 1 || len(got["a"].gpus) != 4 || got["a"].size != 4 {
		t.Errorf("replaced object: %+v, want node a with 4 GPUs", got)
	}
	if len(c.m) != 1 {
		t.Errorf("cache holds %d slices, want only the listed one", len(c.m))
	}
	// A second slice of the same node adds to it; one slice more than the
	// last list is not the same list.
	extra := gpuSlice("a", "T4", 1)
	extra.Name, extra.Spec.Pool.Name = "a-extra", "a-extra"
	extra.Spec.Devices[0].Attributes[gpu.AttrIndex] = resourceapi.DeviceAttribute{IntValue: ptr.To(int64(5))}
	if got := c.get([]*resourceapi.ResourceSlice{a2, extra}); len(got["a"].gpus) != 5 || got["a"].size != 6 {
		t.Errorf("two slices of node a: %+v, want 5 GPUs over indexes 0-5", got["a"])
	}
	other := gpuSlice("c", "T4", 1)
	other.Spec.Driver = "other.example.com"
	if got := c.get([]*resourceapi.ResourceSlice{other}); len(got) != 0 {
		t.Errorf("another driver's slice read as GPUs: %+v", got)
	}
}

// draHandle is a framework handle with only a DRA view (nil: none).
type draHandle struct {
	fwk.Handle
	m fwk.SharedDRAManager
}

func (h draHandle) SharedDRAManager() fwk.SharedDRAManager { return h.m }

func TestDRAManager(t *testing.T) {
	if _, err := DRAManager(draHandle{}, "StrataGPUX"); err == nil || err.Error() != "StrataGPUX needs the DRA manager (DynamicResourceAllocation enabled)" {
		t.Errorf("without DRA: err %v", err)
	}
	var view struct{ fwk.SharedDRAManager }
	if m, err := DRAManager(draHandle{m: view}, "StrataGPUX"); err != nil || m == nil {
		t.Errorf("with DRA: %v, %v", m, err)
	}
}

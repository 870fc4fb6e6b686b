package gpufit

import (
	"context"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/pkg/gpu"
	"github.com/strata-dev/strata/pkg/gpushare"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpustate"
)

func TestReject(t *testing.T) {
	gi := int64(1 << 30)
	node := gpushare.Node{Name: "n", Model: "A100", GPUFree: []int64{1000, 400, 0}, GPUMemFree: []int64{80 * gi, 10 * gi, 0}}
	for _, tc := range []struct {
		name string
		n    gpushare.Node
		t    gpushare.Task
		want string
	}{
		{"no GPU asked", gpushare.Node{Name: "cpu"}, gpushare.Task{CPU: 1000}, ""},
		{"node without GPUs", gpushare.Node{Name: "cpu"}, gpushare.Task{NumGPU: 1, GPUMilli: 1000}, "node has no gpu.strata.dev GPU"},
		{"one whole GPU free", node, gpushare.Task{NumGPU: 1, GPUMilli: 1000}, ""},
		{"two whole GPUs asked", node, gpushare.Task{NumGPU: 2, GPUMilli: 1000}, "fewer than 2 gpu.strata.dev GPUs wholly free"},
		{"share fits the used GPU", node, gpushare.Task{NumGPU: 1, GPUMilli: 400}, ""},
		{"share fits the free GPU only", node, gpushare.Task{NumGPU: 1, GPUMilli: 500}, ""},
		{"share too big for what is left", gpushare.Node{Name: "n", GPUFree: []int64{300, 0}}, gpushare.Task{NumGPU: 1, GPUMilli: 500}, "no gpu.strata.dev GPU with 500 milli-GPU free"},
		{"GPU memory left nowhere", node, gpushare.Task{NumGPU: 1, GPUMilli: 100, GPUMem: 100 * gi}, "no gpu.strata.dev GPU with 100 milli-GPU free and 100Gi of GPU memory free"},
		{"compute and memory on different GPUs", gpushare.Node{Name: "n", GPUFree: []int64{500, 100}, GPUMemFree: []int64{gi, 40 * gi}}, gpushare.Task{NumGPU: 1, GPUMilli: 500, GPUMem: 20 * gi}, "no gpu.strata.dev GPU with 500 milli-GPU free and 20Gi of GPU memory free"},
		{"more memory than the largest GPU has", gpushare.Node{Name: "n", GPUFree: []int64{1000}, GPUMemFree: []int64{80 * gi}, GPUMemMax: 80 * gi}, gpushare.Task{NumGPU: 1, GPUMilli: 1000, GPUMem: 100 * gi}, "no gpu.strata.dev GPU here has 100Gi of memory (the largest has 80Gi)"},
		{"memory not modelled on the node", gpushare.Node{Name: "n", GPUFree: []int64{1000}}, gpushare.Task{NumGPU: 1, GPUMilli: 1000, GPUMem: 100 * gi}, ""},
		{"two halves", node, gpushare.Task{NumGPU: 2, GPUMilli: 400}, ""},
		{"two larger parts", node, gpushare.Task{NumGPU: 2, GPUMilli: 600}, "fewer than 2 gpu.strata.dev GPUs with 600 milli-GPU free"},
		// The state keeps one model per node; DynamicResources checks selectors.
		{"model left to DynamicResources", node, gpushare.Task{NumGPU: 1, GPUMilli: 1000, Models: "V100"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Reject(tc.n, tc.t); got != tc.want {
				t.Errorf("Reject(%v, %v) = %q, want %q", tc.n, tc.t, got, tc.want)
			}
		})
	}
}

// fakeDRA is the part of the scheduler's DRA view the plugin reads.
type fakeDRA struct {
	fwk.SharedDRAManager
	claims map[string]*resourceapi.ResourceClaim
	slices []*resourceapi.ResourceSlice
}

func (f *fakeDRA) ResourceClaims() fwk.ResourceClaimTracker { return fakeClaims{fakeDRA: f} }
func (f *fakeDRA) ResourceSlices() fwk.ResourceSliceLister  { return fakeSlices{fakeDRA: f} }

type fakeClaims struct {
	fwk.ResourceClaimTracker
	*fakeDRA
}

func (f fakeClaims) Get(ns, name string) (*resourceapi.ResourceClaim, error) {
	if c, ok := f.claims[ns+"/"+name]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("resourceclaim %s/%s not found", ns, name)
}

func (f fakeClaims) GetPendingAllocation(types.UID) *resourceapi.AllocationResult { return nil }

type fakeSlices struct {
	fwk.ResourceSliceLister
	*fakeDRA
}

func (f fakeSlices) ListWithDeviceTaintRules() ([]*resourceapi.ResourceSlice, error) {
	return f.slices, nil
}

func gpuSlice(node string, n int) *resourceapi.ResourceSlice {
	s := &resourceapi.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{Name: node + "-gpu"},
		Spec: resourceapi.ResourceSliceSpec{
			Driver:   gpu.DriverName,
			Pool:     resourceapi.ResourcePool{Name: node, ResourceSliceCount: 1},
			NodeName: ptr.To(node),
		},
	}
	for i := range n {
		s.Spec.Devices = append(s.Spec.Devices, resourceapi.Device{
			Name:       fmt.Sprintf("gpu-%d", i),
			Attributes: map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{gpu.AttrIndex: {IntValue: ptr.To(int64(i))}},
			Capacity: map[resourceapi.QualifiedName]resourceapi.DeviceCapacity{
				gpu.CapacityCompute: {Value: resource.MustParse("1000")},
				gpu.CapacityMemory:  {Value: resource.MustParse("16Gi")},
			},
			AllowMultipleAllocations: ptr.To(true),
		})
	}
	return s
}

func nodeInfo(name string) fwk.NodeInfo {
	rl := v1.ResourceList{v1.ResourceCPU: resource.MustParse("32"), v1.ResourceMemory: resource.MustParse("64Gi"), v1.ResourcePods: resource.MustParse("110")}
	ni := framework.NewNodeInfo()
	ni.SetNode(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: v1.NodeStatus{Allocatable: rl, Capacity: rl}})
	return ni
}

func gpuClaim(name, compute string) *resourceapi.ResourceClaim {
	return &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{{Name: "gpu",
			Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: gpu.DriverName, AllocationMode: resourceapi.DeviceAllocationModeExactCount, Count: 1,
				Capacity: &resourceapi.CapacityRequirements{Requests: map[resourceapi.QualifiedName]resource.Quantity{gpu.CapacityCompute: resource.MustParse(compute)}}}}}}},
	}
}

func podWith(claim string) *v1.Pod {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c"}}}}
	if claim != "" {
		pod.Spec.ResourceClaims = []v1.PodResourceClaim{{Name: "gpu", ResourceClaimName: ptr.To(claim)}}
	}
	return pod
}

// TestPreFilterAndFilter runs the plugin over two nodes, "busy" with 700
// milli-GPU of its only GPU consumed and "idle", and checks which pods it
// judges and which nodes it turns away.
func TestPreFilterAndFilter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	holder := gpuClaim("holder", "700") // allocated: 700 of busy's GPU
	holder.UID = "uid-holder"
	holder.Status.Allocation = &resourceapi.AllocationResult{Devices: resourceapi.DeviceAllocationResult{Results: []resourceapi.DeviceRequestAllocationResult{{
		Request: "gpu", Driver: gpu.DriverName, Pool: "busy", Device: "gpu-0", ShareID: ptr.To(types.UID("share")),
		ConsumedCapacity: map[resourceapi.QualifiedName]resource.Quantity{gpu.CapacityCompute: resource.MustParse("700")},
	}}}}
	inf := informers.NewSharedInformerFactory(fake.NewClientset(holder), 0)
	claimInformer := inf.Resource().V1().ResourceClaims().Informer()
	allocated := gpuClaim("allocated", "500")
	allocated.Status.Allocation = &resourceapi.AllocationResult{}
	claims := map[string]*resourceapi.ResourceClaim{
		"ns/small": gpuClaim("small", "300"), "ns/big": gpuClaim("big", "500"), "ns/allocated": allocated,
	}
	nodeLocal := []*resourceapi.ResourceSlice{gpuSlice("busy", 1), gpuSlice("idle", 1)}
	shared := gpuSlice("", 2)
	shared.Spec.NodeName, shared.Spec.AllNodes = nil, ptr.To(true)

	for _, tc := range []struct {
		name     string
		claim    string
		slices   []*resourceapi.ResourceSlice
		skip     bool
		rejected map[string]string // node -> reason
	}{
		{"pod without claims", "", nodeLocal, true, nil},
		{"share fits both", "small", nodeLocal, false, map[string]string{}},
		{"share fits the idle GPU only", "big", nodeLocal, false, map[string]string{"busy": "no gpu.strata.dev GPU with 500 milli-GPU free"}},
		{"claim allocated already", "allocated", nodeLocal, true, nil},
		{"claim missing", "gone", nodeLocal, true, nil},
		{"devices not tied to a node", "big", append([]*resourceapi.ResourceSlice{shared}, nodeLocal...), true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &fakeDRA{claims: claims, slices: tc.slices}
			src, err := gpustate.NewDRASource(m, claimInformer)
			if err != nil {
				t.Fatal(err)
			}
			inf.Start(ctx.Done())
			p := &Plugin{m: m, src: src}
			nodes := []fwk.NodeInfo{nodeInfo("busy"), nodeInfo("idle")}
			cs := framework.NewCycleState()
			_, st := p.PreFilter(context.Background(), cs, podWith(tc.claim), nodes)
			if tc.skip {
				if !st.IsSkip() {
					t.Fatalf("PreFilter: %v, want Skip", st)
				}
				return
			}
			if !st.IsSuccess() {
				t.Fatalf("PreFilter: %v", st)
			}
			for _, ni := range nodes {
				st := p.Filter(context.Background(), cs, podWith(tc.claim), ni)
				want, rejected := tc.rejected[ni.Node().Name]
				switch {
				case rejected && (st.Code() != fwk.UnschedulableAndUnresolvable || st.Message() != want):
					t.Errorf("Filter(%s) = %v, want UnschedulableAndUnresolvable %q", ni.Node().Name, st, want)
				case !rejected && !st.IsSuccess():
					t.Errorf("Filter(%s) = %v, want success", ni.Node().Name, st)
				}
			}
			// The scorers reuse the state instead of reading it again.
			if d, err := gpustate.Read(cs); err != nil || len(d.Nodes) != 2 {
				t.Errorf("cycle state: %v, %v; want both nodes' GPU state", d, err)
			}
		})
	}
}

func TestAfterClaimChange(t *testing.T) {
	allocated := func(c *resourceapi.ResourceClaim) *resourceapi.ResourceClaim {
		c = c.DeepCopy()
		c.Status.Allocation = &resourceapi.AllocationResult{}
		return c
	}
	other, mine := gpuClaim("other", "500"), gpuClaim("mine", "500")
	for _, tc := range []struct {
		name     string
		old, new any
		want     fwk.QueueingHint
	}{
		{"another pod's claim allocated", other, allocated(other), fwk.QueueSkip},
		{"another pod's claim deallocated", allocated(other), other, fwk.Queue},
		{"allocated claim deleted", allocated(other), nil, fwk.Queue},
		{"unallocated claim deleted", other, nil, fwk.QueueSkip},
		{"deleted, final state unknown", cache.DeletedFinalStateUnknown{Key: "ns/other"}, nil, fwk.Queue},
		{"the pod's own claim changed", mine, allocated(mine), fwk.Queue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := (&Plugin{}).afterClaimChange(klog.Background(), podWith("mine"), tc.old, tc.new)
			if err != nil || got != tc.want {
				t.Errorf("hint %v (err %v), want %v", got, err, tc.want)
			}
		})
	}
}

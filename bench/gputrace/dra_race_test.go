package main

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/dynamic-resource-allocation/resourceslice/tracker"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/dynamicresources"
	"k8s.io/kubernetes/pkg/scheduler/util/assumecache"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpustate"
)

// TestDRAInFlightDoubleCount walks one claim through the steps
// DynamicResources' PreBind takes (in flight, API write, assume, leave
// the in-flight set) and reads the allocated state between them, as a
// concurrent scheduling cycle would. It pins upstream v1.37.2 behaviour:
// between AssumeClaimAfterAPICall and MaybeRemoveClaimPendingAllocation
// a share's consumed capacity is counted twice, once as allocated and
// once as in flight, so a concurrent Filter can find a GPU full that is
// not (the server replay's occasional divergence, bench/RESULTS.md). If
// this test fails because the middle reading is right, upstream fixed it:
// drop the caveat from bench/RESULTS.md and pkg/scheduler/plugins/README.md.
// Strata's own view (gpustate.DRASource, which StrataGPUFit and the GPU
// scorers read) must count the share once at every step.
func TestDRAInFlightDoubleCount(t *testing.T) {
	logger, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	client := fake.NewClientset()
	versionObjects(client)
	claim := &resourceapi.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", UID: "uid-c"}}
	claim, err := client.ResourceV1().ResourceClaims("ns").Create(ctx, claim, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slice := &resourceapi.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a-gpu"},
		Spec: resourceapi.ResourceSliceSpec{Driver: "gpu.strata.dev", NodeName: ptr.To("node-a"),
			Pool: resourceapi.ResourcePool{Name: "node-a", ResourceSliceCount: 1},
			Devices: []resourceapi.Device{{Name: "gpu-0", AllowMultipleAllocations: ptr.To(true),
				Capacity: map[resourceapi.QualifiedName]resourceapi.DeviceCapacity{"compute": {Value: resource.MustParse("1000")}}}}},
	}
	if _, err := client.ResourceV1().ResourceSlices().Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	node := framework.NewNodeInfo()
	node.SetNode(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}})
	inf := informers.NewSharedInformerFactory(client, 0)
	claims := assumecache.NewAssumeCache(logger, inf.Resource().V1().ResourceClaims().Informer(), "ResourceClaim", "", nil)
	slices, err := tracker.StartTracker(ctx, tracker.Options{EnableConsumableCapacity: true, SliceInformer: inf.Resource().V1().ResourceSlices(), KubeClient: client})
	if err != nil {
		t.Fatal(err)
	}
	m := dynamicresources.NewDRAManager(ctx, claims, slices, inf)
	src, err := gpustate.NewDRASource(m, inf.Resource().V1().ResourceClaims().Informer())
	if err != nil {
		t.Fatal(err)
	}
	inf.Start(ctx.Done())
	inf.WaitForCacheSync(ctx.Done())
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		l, err := m.ResourceSlices().ListWithDeviceTaintRules()
		return len(claims.List(nil)) == 1 && len(l) == 1, err
	}); err != nil {
		t.Fatal(err)
	}

	allocated := claim.DeepCopy()
	allocated.Status.Allocation = &resourceapi.AllocationResult{Devices: resourceapi.DeviceAllocationResult{Results: []resourceapi.DeviceRequestAllocationResult{{
		Request: "gpu", Driver: "gpu.strata.dev", Pool: "node-a", Device: "gpu-0", ShareID: ptr.To(types.UID("share-1")),
		ConsumedCapacity: map[resourceapi.QualifiedName]resource.Quantity{"compute": resource.MustParse("250")},
	}}}}
	computeUsed := func(step string) int64 {
		t.Helper()
		s, err := m.ResourceClaims().GatherAllocatedState()
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		var total int64
		for _, c := range s.AggregatedCapacity {
			if q, ok := c["compute"]; ok {
				total += q.Value()
			}
		}
		state, err := src.Nodes(ctx, []fwk.NodeInfo{node})
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if free := state["node-a"].GPUFree; len(free) != 1 || free[0] != 750 {
			t.Errorf("%s: gpustate.DRASource finds %v milli-GPU free, want [750]", step, free)
		}
		t.Logf("%s: %d milli-GPU counted", step, total)
		return total
	}
	tr := m.ResourceClaims()
	if err := tr.SignalClaimPendingAllocation(claim.UID, allocated); err != nil {
		t.Fatal(err)
	}
	// StrataGPUFit's Reserve, after DynamicResources' (the same phase).
	src.Reserve(&v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec: v1.PodSpec{ResourceClaims: []v1.PodResourceClaim{{Name: "gpu", ResourceClaimName: ptr.To("c")}}}})
	inFlight := computeUsed("in flight")
	updated, err := client.ResourceV1().ResourceClaims("ns").UpdateStatus(ctx, allocated, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.AssumeClaimAfterAPICall(updated); err != nil {
		t.Fatal(err)
	}
	both := computeUsed("assumed and still in flight")
	tr.MaybeRemoveClaimPendingAllocation(claim.UID, true)
	after := computeUsed("assumed")
	if inFlight != 250 || after != 250 {
		t.Fatalf("in flight %d, after %d milli-GPU: want 250 both times", inFlight, after)
	}
	if both != 2*250 {
		t.Fatalf("assumed and still in flight: %d milli-GPU, no longer the double count (500) upstream v1.37.2 shows: see the comment", both)
	}
}

package dra

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/dynamic-resource-allocation/cel"
	"k8s.io/dynamic-resource-allocation/structured"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/pkg/gpu"
)

func TestDeviceContent(t *testing.T) {
	gpus, err := ParseSimulated("1xA100-80GB", "n1")
	if err != nil {
		t.Fatal(err)
	}
	d := Device(gpus[0])
	if d.Name != "gpu-0" {
		t.Errorf("name %q", d.Name)
	}
	attrs := map[string]string{}
	for k, v := range d.Attributes {
		switch {
		case v.StringValue != nil:
			attrs[string(k)] = *v.StringValue
		case v.IntValue != nil:
			attrs[string(k)] = fmt.Sprint(*v.IntValue)
		case v.BoolValue != nil:
			attrs[string(k)] = fmt.Sprint(*v.BoolValue)
		}
	}
	want := map[string]string{"model": "A100-80GB", "uuid": "GPU-sim-n1-0", "index": "0", "migCapable": "false", "backend": "simulated"}
	if fmt.Sprint(attrs) != fmt.Sprint(want) {
		t.Errorf("attributes %v, want %v", attrs, want)
	}
	if d.AllowMultipleAllocations == nil || !*d.AllowMultipleAllocations {
		t.Error("allowMultipleAllocations not set")
	}
	compute := d.Capacity[gpu.CapacityCompute]
	if compute.Value.Value() != 1000 || compute.RequestPolicy.Default.Value() != 1000 ||
		compute.RequestPolicy.ValidRange.Min.Value() != 1 || compute.RequestPolicy.ValidRange.Max.Value() != 1000 {
		t.Errorf("compute capacity %+v", compute)
	}
	mem := d.Capacity[gpu.CapacityMemory]
	if mem.Value.Value() != 80<<30 || mem.RequestPolicy.Default.Value() != 0 || mem.RequestPolicy.ValidRange.Max.Value() != 80<<30 {
		t.Errorf("memory capacity %+v", mem)
	}

	res := DriverResources("n1", gpus)
	if len(res.Pools) != 1 || len(res.Pools["n1"].Slices) != 1 || len(res.Pools["n1"].Slices[0].Devices) != 1 {
		t.Errorf("driver resources %+v", res)
	}
	class := DeviceClass()
	if class.Name != DriverName || class.Spec.Selectors[0].CEL.Expression != `device.driver == "gpu.strata.dev"` {
		t.Errorf("device class %+v", class)
	}
}

// classLister serves the DeviceClass to the allocator.
type classLister struct{}

func (classLister) List() ([]*resourcev1.DeviceClass, error) {
	return []*resourcev1.DeviceClass{DeviceClass()}, nil
}

func (classLister) Get(name string) (*resourcev1.DeviceClass, error) {
	if name != DriverName {
		return nil, fmt.Errorf("device class %q not found", name)
	}
	return DeviceClass(), nil
}

// cluster runs the scheduler's upstream allocator (the same package
// kube-scheduler uses) against the slice the driver publishes, tracking
// allocated shares and consumed capacity as the scheduler does.
type cluster struct {
	t     *testing.T
	node  *corev1.Node
	slice *resourcev1.ResourceSlice
	state structured.AllocatedState
}

func newCluster(t *testing.T, inventory string) *cluster {
	gpus, err := ParseSimulated(inventory, "n1")
	if err != nil {
		t.Fatal(err)
	}
	res := DriverResources("n1", gpus)
	return &cluster{
		t:    t,
		node: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}},
		slice: &resourcev1.ResourceSlice{
			ObjectMeta: metav1.ObjectMeta{Name: "n1-gpu.strata.dev"},
			Spec: resourcev1.ResourceSliceSpec{
				Driver:   DriverName,
				NodeName: ptr.To("n1"),
				Pool:     resourcev1.ResourcePool{Name: "n1", ResourceSliceCount: 1},
				Devices:  res.Pools["n1"].Slices[0].Devices,
			},
		},
		state: structured.AllocatedState{
			AllocatedDevices:         sets.New[structured.DeviceID](),
			AllocatedSharedDeviceIDs: sets.New[structured.SharedDeviceID](),
			AggregatedCapacity:       structured.NewConsumedCapacityCollection(),
		},
	}
}

// allocate returns the allocation of one claim, or nil when it does not fit.
func (c *cluster) allocate(claim *resourcev1.ResourceClaim) *resourcev1.AllocationResult {
	c.t.Helper()
	ctx := context.Background()
	alloc, err := structured.NewAllocator(ctx, structured.Features{ConsumableCapacity: true}, c.state,
		classLister{}, []*resourcev1.ResourceSlice{c.slice}, cel.NewCache(10, cel.Features{EnableConsumableCapacity: true}))
	if err != nil {
		c.t.Fatal(err)
	}
	results, err := alloc.Allocate(ctx, c.node, []*resourcev1.ResourceClaim{claim})
	if err != nil {
		c.t.Fatalf("allocate %s: %v", claim.Name, err)
	}
	if len(results) == 0 {
		return nil
	}
	for _, r := range results[0].Devices.Results {
		id := structured.MakeDeviceID(r.Driver, r.Pool, r.Device)
		if r.ShareID == nil {
			c.state.AllocatedDevices.Insert(id)
			continue
		}
		c.state.AllocatedSharedDeviceIDs.Insert(structured.MakeSharedDeviceID(id, r.ShareID))
		c.state.AggregatedCapacity.Insert(structured.NewDeviceConsumedCapacity(id, r.ConsumedCapacity))
	}
	return &results[0]
}

// free releases an allocation as the scheduler does when the claim goes.
func (c *cluster) free(a *resourcev1.AllocationResult) {
	for _, r := range a.Devices.Results {
		id := structured.MakeDeviceID(r.Driver, r.Pool, r.Device)
		if r.ShareID == nil {
			c.state.AllocatedDevices.Delete(id)
			continue
		}
		c.state.AllocatedSharedDeviceIDs.Delete(structured.MakeSharedDeviceID(id, r.ShareID))
		c.state.AggregatedCapacity.Remove(structured.NewDeviceConsumedCapacity(id, r.ConsumedCapacity))
	}
}

func gpuClaim(name string, count int64, capacity map[resourcev1.QualifiedName]string) *resourcev1.ResourceClaim {
	req := resourcev1.ExactDeviceRequest{DeviceClassName: DriverName, AllocationMode: resourcev1.DeviceAllocationModeExactCount, Count: count}
	if len(capacity) > 0 {
		req.Capacity = &resourcev1.CapacityRequirements{Requests: map[resourcev1.QualifiedName]resource.Quantity{}}
		for k, v := range capacity {
			req.Capacity.Requests[k] = resource.MustParse(v)
		}
	}
	return &resourcev1.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{
			Requests: []resourcev1.DeviceRequest{{Name: "gpu", Exactly: &req}},
		}},
	}
}

func devicesOf(a *resourcev1.AllocationResult) []string {
	var out []string
	for _, r := range a.Devices.Results {
		q := r.ConsumedCapacity[gpu.CapacityCompute]
		out = append(out, fmt.Sprintf("%s:%d", r.Device, q.Value()))
	}
	return out
}

// TestAllocatorHonoursSharing checks the resource model against the
// scheduler's real allocator: the acceptance scenario of issue 6.
func TestAllocatorHonoursSharing(t *testing.T) {
	c := newCluster(t, "2xA100-80GB")
	var shares []*resourcev1.AllocationResult
	for i := range 4 {
		a := c.allocate(gpuClaim(fmt.Sprintf("share-%d", i), 1, map[resourcev1.QualifiedName]string{"compute": "250"}))
		if a == nil {
			t.Fatalf("share %d not allocated", i)
		}
		if got := devicesOf(a); len(got) != 1 || got[0] != "gpu-0:250" {
			t.Fatalf("share %d got %v, want gpu-0:250", i, got)
		}
		if a.Devices.Results[0].ShareID == nil {
			t.Fatalf("share %d has no share ID", i)
		}
		shares = append(shares, a)
	}
	fifth := c.allocate(gpuClaim("share-4", 1, map[resourcev1.QualifiedName]string{"compute": "250"}))
	if fifth == nil || devicesOf(fifth)[0] != "gpu-1:250" {
		t.Fatalf("fifth share: %v, want gpu-1:250", fifth)
	}
	// A whole GPU no longer fits: both are partly used.
	if a := c.allocate(gpuClaim("whole", 1, nil)); a != nil {
		t.Fatalf("whole GPU allocated on shared GPUs: %v", devicesOf(a))
	}
	// Freeing a share makes room for another on gpu-0.
	c.free(shares[0])
	if a := c.allocate(gpuClaim("share-5", 1, map[resourcev1.QualifiedName]string{"compute": "250"})); a == nil || devicesOf(a)[0] != "gpu-0:250" {
		t.Fatalf("share after free: %v", a)
	}
}

func TestAllocatorWholeAndMemory(t *testing.T) {
	c := newCluster(t, "2xA100-80GB,1xT4-16GB")
	two := c.allocate(gpuClaim("two", 2, nil))
	if two == nil {
		t.Fatal("two whole GPUs not allocated")
	}
	if got := devicesOf(two); len(got) != 2 || got[0] == got[1] || got[0] != "gpu-0:1000" {
		t.Fatalf("two whole GPUs: %v", got)
	}
	if a := newCluster(t, "1xA100-80GB").allocate(gpuClaim("two", 2, nil)); a != nil {
		t.Fatalf("two whole GPUs from one: %v", devicesOf(a))
	}
	// Only the T4 is left; it cannot give 20Gi.
	if a := c.allocate(gpuClaim("big-share", 1, map[resourcev1.QualifiedName]string{"compute": "100", "memory": "20Gi"})); a != nil {
		t.Fatalf("20Gi share allocated on %v", devicesOf(a))
	}
	mem := c.allocate(gpuClaim("mem-share", 1, map[resourcev1.QualifiedName]string{"compute": "100", "memory": "8Gi"}))
	if mem == nil || mem.Devices.Results[0].Device != "gpu-2" {
		t.Fatalf("8Gi share: %v", mem)
	}
	if got := mem.Devices.Results[0].ConsumedCapacity[gpu.CapacityMemory]; got.Value() != 8<<30 {
		t.Fatalf("consumed memory %d", got.Value())
	}
	// More memory than any GPU has never fits: the claim stays pending.
	if a := newCluster(t, "2xA100-80GB").allocate(gpuClaim("huge", 1, map[resourcev1.QualifiedName]string{"memory": "100Gi"})); a != nil {
		t.Fatalf("100Gi allocated on %v", devicesOf(a))
	}
}

func TestAllocatorUnknownClass(t *testing.T) {
	c := newCluster(t, "1xA100-80GB")
	claim := gpuClaim("other", 1, nil)
	claim.Spec.Devices.Requests[0].Exactly.DeviceClassName = "gpu.example.com"
	ctx := context.Background()
	alloc, err := structured.NewAllocator(ctx, structured.Features{ConsumableCapacity: true}, c.state,
		classLister{}, []*resourcev1.ResourceSlice{c.slice}, cel.NewCache(10, cel.Features{EnableConsumableCapacity: true}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alloc.Allocate(ctx, c.node, []*resourcev1.ResourceClaim{claim}); err == nil {
		t.Fatal("claim with unknown device class allocated")
	}
}

package gpustate

import (
	"context"
	"fmt"
	"testing"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/dynamic-resource-allocation/structured"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/pkg/gpu"
)

// result is one device of an allocation, the GPU with index index: a
// share (compute, mem) when share is set, else the device whole.
func result(driver, node string, index int, share bool, compute, mem int64) resourceapi.DeviceRequestAllocationResult {
	r := resourceapi.DeviceRequestAllocationResult{Request: "gpu", Driver: driver, Pool: node, Device: gpu.DeviceName(index)}
	if share {
		r.ShareID = ptr.To(types.UID(fmt.Sprintf("share-%s-%d-%d", node, index, compute)))
		r.ConsumedCapacity = map[resourceapi.QualifiedName]resource.Quantity{gpu.CapacityCompute: *resource.NewQuantity(compute, resource.DecimalSI)}
		if mem > 0 {
			r.ConsumedCapacity[gpu.CapacityMemory] = *resource.NewQuantity(mem, resource.BinarySI)
		}
	}
	return r
}

func allocation(rs ...resourceapi.DeviceRequestAllocationResult) *resourceapi.AllocationResult {
	return &resourceapi.AllocationResult{Devices: resourceapi.DeviceAllocationResult{Results: rs}}
}

func indexedClaim(name string, a *resourceapi.AllocationResult) *resourceapi.ResourceClaim {
	return &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)},
		Status:     resourceapi.ResourceClaimStatus{Allocation: a},
	}
}

// schedulerClaims is the scheduler's claim tracker as the index reads it:
// allocations in flight, and claims assumed after PreBind's write.
type schedulerClaims struct {
	fwk.ResourceClaimTracker
	inFlight map[types.UID]*resourceapi.AllocationResult
	assumed  map[string]*resourceapi.ResourceClaim
	gets     *int
}

func (s schedulerClaims) GetPendingAllocation(uid types.UID) *resourceapi.AllocationResult {
	return s.inFlight[uid]
}

func (s schedulerClaims) Get(ns, name string) (*resourceapi.ResourceClaim, error) {
	if s.gets != nil {
		*s.gets++
	}
	if c, ok := s.assumed[ns+"/"+name]; ok {
		return c, nil
	}
	return indexedClaim(name, nil), nil
}

func TestClaimIndexUsage(t *testing.T) {
	id := func(node string, i int) structured.DeviceID {
		return structured.MakeDeviceID(gpu.DriverName, node, fmt.Sprintf("gpu-%d", i))
	}
	x := emptyClaimIndex()
	admin := result(gpu.DriverName, "a", 1, false, 0, 0)
	admin.AdminAccess = ptr.To(true)
	both := allocation(result(gpu.DriverName, "a", 3, true, 400, 0))
	for _, c := range []*resourceapi.ResourceClaim{
		indexedClaim("share", allocation(result(gpu.DriverName, "a", 0, true, 250, 4<<30))),
		indexedClaim("share2", allocation(result(gpu.DriverName, "a", 0, true, 100, 1<<30))),
		indexedClaim("whole", allocation(result(gpu.DriverName, "b", 1, false, 0, 0))),
		indexedClaim("two", allocation(result(gpu.DriverName, "b", 2, false, 0, 0), result(gpu.DriverName, "b", 3, false, 0, 0))),
		indexedClaim("admin", allocation(admin)),
		indexedClaim("nic", allocation(result("nic.example.com", "a", 0, false, 0, 0))),
		indexedClaim("inflight", nil),
		indexedClaim("assumed", nil),
		indexedClaim("stale-assumed", nil), // assumed copy of an older claim with this name
		indexedClaim("pending", nil),       // nothing yet
		indexedClaim("both", both),         // allocated in the informer and still in flight
	} {
		x.set(c, false)
	}
	x.set(cache.DeletedFinalStateUnknown{Key: "ns/two", Obj: indexedClaim("two", allocation(result(gpu.DriverName, "b", 2, false, 0, 0), result(gpu.DriverName, "b", 3, false, 0, 0)))}, true)
	x.set(indexedClaim("share2", nil), false) // deallocated
	stale := indexedClaim("stale-assumed", allocation(result(gpu.DriverName, "a", 2, true, 999, 0)))
	stale.UID = "uid-old"
	check := func(step string, tracker schedulerClaims, want map[structured.DeviceID]deviceUsage) {
		t.Helper()
		x.withUsage(tracker, func(usage func(structured.DeviceID) deviceUsage) {
			for d, w := range want {
				if got := usage(d); got != w {
					t.Errorf("%s: usage of %s = %+v, want %+v", step, d, got, w)
				}
			}
		})
	}
	// The scheduler reserved four pods' claims ("both" is allocated
	// already: the informer counts it); "pending" was never reserved.
	for _, name := range []string{"inflight", "assumed", "stale-assumed", "both", "new"} {
		x.reserve(types.UID("uid-"+name), claimRef{"ns", name})
	}
	// "new" is not in the index yet (a template's claim whose informer
	// event is on the way): marked all the same; then it arrives allocated.
	if len(x.reserved) != 4 {
		t.Fatalf("reserved %v, want the 4 claims not allocated in the index", x.reserved)
	}
	x.set(indexedClaim("new", allocation(result(gpu.DriverName, "b", 4, true, 100, 0))), false)
	if _, ok := x.reserved["uid-new"]; ok {
		t.Fatal("a reserved claim the informer delivered allocated is still marked")
	}
	x.set(indexedClaim("inflight", nil), false) // an update that allocates nothing keeps the mark
	// First cycle: the reserved claims are in flight. A claim that was not
	// reserved is not looked up.
	gets := 0
	check("first cycle", schedulerClaims{
		inFlight: map[types.UID]*resourceapi.AllocationResult{
			"uid-inflight":      allocation(result(gpu.DriverName, "a", 0, true, 300, 2<<30)),
			"uid-assumed":       allocation(result(gpu.DriverName, "a", 2, true, 500, 0)),
			"uid-stale-assumed": allocation(result(gpu.DriverName, "a", 2, true, 999, 0)),
			"uid-both":          both,
		},
		assumed: map[string]*resourceapi.ResourceClaim{"ns/pending": indexedClaim("pending", allocation(result(gpu.DriverName, "b", 0, false, 0, 0)))},
		gets:    &gets,
	}, map[structured.DeviceID]deviceUsage{
		id("a", 0): {compute: 550, mem: 6 << 30}, // share + inflight; share2 gone
		id("a", 1): {},                           // admin access takes nothing
		id("a", 2): {compute: 1499},
		id("a", 3): {compute: 400}, // counted once
		id("b", 0): {},             // not reserved: not looked up
		id("b", 1): {whole: 1},
		id("b", 2): {}, // deleted
		id("b", 3): {},
	})
	if gets != 0 {
		t.Errorf("first cycle: %d claim lookups, want none", gets)
	}
	// Second cycle: PreBind wrote two of them; one is the assumed copy of
	// an older claim of the same name (so this one was unreserved).
	check("second cycle", schedulerClaims{
		inFlight: map[types.UID]*resourceapi.AllocationResult{"uid-inflight": allocation(result(gpu.DriverName, "a", 0, true, 300, 2<<30))},
		assumed: map[string]*resourceapi.ResourceClaim{
			"ns/assumed":       indexedClaim("assumed", allocation(result(gpu.DriverName, "a", 2, true, 500, 0))),
			"ns/stale-assumed": stale,
		},
		gets: &gets,
	}, map[structured.DeviceID]deviceUsage{
		id("a", 0): {compute: 550, mem: 6 << 30},
		id("a", 2): {compute: 500}, // assumed, not the stale copy
		id("a", 3): {compute: 400},
	})
	if _, ok := x.reserved["uid-assumed"]; gets != 2 || !ok || len(x.reserved) != 2 {
		t.Errorf("second cycle: %d lookups, reserved %v; want 2 lookups, the unreserved claim forgotten", gets, x.reserved)
	}
	x.set(indexedClaim("assumed", allocation(result(gpu.DriverName, "a", 2, true, 500, 0))), false)
	if _, ok := x.reserved["uid-assumed"]; ok {
		t.Error("a claim the informer delivered allocated is still marked reserved")
	}
	if len(x.used) != 5 {
		t.Errorf("index keeps %d devices (%v), want the 5 allocated ones in use", len(x.used), x.used)
	}
}

// TestClaimIndexInformer runs the index on a real informer: it syncs,
// follows an allocation and a delete.
func TestClaimIndexInformer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	claim := indexedClaim("c", nil)
	client := fake.NewClientset(claim)
	inf := informers.NewSharedInformerFactory(client, 0)
	x, err := newClaimIndex(inf.Resource().V1().ResourceClaims().Informer())
	if err != nil {
		t.Fatal(err)
	}
	inf.Start(ctx.Done())
	if err := x.waitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	dev := structured.MakeDeviceID(gpu.DriverName, "a", "gpu-0")
	waitFor := func(what string, want deviceUsage) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			var got deviceUsage
			x.withUsage(schedulerClaims{}, func(usage func(structured.DeviceID) deviceUsage) { got = usage(dev) })
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: usage %+v, want %+v", what, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	claim = claim.DeepCopy()
	claim.Status.Allocation = allocation(result(gpu.DriverName, "a", 0, true, 250, 0))
	if _, err := client.ResourceV1().ResourceClaims("ns").UpdateStatus(ctx, claim, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("after allocation", deviceUsage{compute: 250})
	if err := client.ResourceV1().ResourceClaims("ns").Delete(ctx, "c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("after delete", deviceUsage{})
}

// TestSourcesShareOneIndex checks that the plugins of one scheduler (one
// DRA view) get one claim index, so claims one marks reserved count for
// all.
func TestSourcesShareOneIndex(t *testing.T) {
	type view struct{ fwk.SharedDRAManager }
	a, b := &view{}, &view{}
	inf := informers.NewSharedInformerFactory(fake.NewClientset(), 0).Resource().V1().ResourceClaims().Informer()
	s := NewSources()
	a1, err := s.For(a, inf)
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := s.For(a, inf)
	b1, _ := s.For(b, inf)
	if a1.claims != a2.claims || a1.parsed != a2.parsed {
		t.Error("two plugins on one DRA view got different GPU states")
	}
	if a1.claims == b1.claims {
		t.Error("two DRA views share a GPU state")
	}
}

// TestClaimIndexWaitApplied checks that a queueing hint's wait returns
// once the index has applied the event, and gives up after its timeout.
func TestClaimIndexWaitApplied(t *testing.T) {
	x := emptyClaimIndex()
	ctx := context.Background()
	v := func(name, rv string, a *resourceapi.AllocationResult) *resourceapi.ResourceClaim {
		c := indexedClaim(name, a)
		c.ResourceVersion = rv
		return c
	}
	x.set(v("c", "10", allocation(result(gpu.DriverName, "a", 0, true, 250, 0))), false)
	for _, tc := range []struct {
		name    string
		obj     any
		deleted bool
		late    bool
	}{
		{"version applied", v("c", "10", nil), false, false},
		{"older version", v("c", "9", nil), false, false},
		{"newer version not applied yet", v("c", "11", nil), false, true},
		{"delete not applied yet", v("c", "10", nil), true, true},
		{"delete of a claim never indexed", v("other", "3", nil), true, false},
		{"tombstone", cache.DeletedFinalStateUnknown{Obj: v("c", "10", nil)}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			x.waitApplied(ctx, tc.obj, tc.deleted, 50*time.Millisecond)
			if waited := time.Since(start) >= 50*time.Millisecond; waited != tc.late {
				t.Errorf("waited the whole timeout: %v, want %v", waited, tc.late)
			}
		})
	}
	// The event arrives while the hint waits.
	go func() {
		time.Sleep(20 * time.Millisecond)
		x.set(v("c", "11", nil), false)
	}()
	start := time.Now()
	x.waitApplied(ctx, v("c", "11", nil), false, 5*time.Second)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("waited %v for an event applied after 20ms", d)
	}
	if u := x.used[structured.MakeDeviceID(gpu.DriverName, "a", "gpu-0")]; u != (deviceUsage{}) {
		t.Errorf("usage after the deallocation: %+v", u)
	}
}

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
)

// result is one device of an allocation: a share (compute, mem) when
// share is set, else the device whole.
func result(driver, node string, gpu int, share bool, compute, mem int64) resourceapi.DeviceRequestAllocationResult {
	r := resourceapi.DeviceRequestAllocationResult{Request: "gpu", Driver: driver, Pool: node, Device: fmt.Sprintf("gpu-%d", gpu)}
	if share {
		r.ShareID = ptr.To(types.UID(fmt.Sprintf("share-%s-%d-%d", node, gpu, compute)))
		r.ConsumedCapacity = map[resourceapi.QualifiedName]resource.Quantity{CapacityCompute: *resource.NewQuantity(compute, resource.DecimalSI)}
		if mem > 0 {
			r.ConsumedCapacity[CapacityMemory] = *resource.NewQuantity(mem, resource.BinarySI)
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
}

func (s schedulerClaims) GetPendingAllocation(uid types.UID) *resourceapi.AllocationResult {
	return s.inFlight[uid]
}

func (s schedulerClaims) Get(ns, name string) (*resourceapi.ResourceClaim, error) {
	if c, ok := s.assumed[ns+"/"+name]; ok {
		return c, nil
	}
	return indexedClaim(name, nil), nil
}

func TestClaimIndexUsage(t *testing.T) {
	id := func(node string, i int) structured.DeviceID {
		return structured.MakeDeviceID(DriverName, node, fmt.Sprintf("gpu-%d", i))
	}
	x := &claimIndex{allocated: map[types.UID][]deviceUse{}, used: map[structured.DeviceID]deviceUsage{}, unallocated: map[types.UID]claimRef{}}
	admin := result(DriverName, "a", 1, false, 0, 0)
	admin.AdminAccess = ptr.To(true)
	both := allocation(result(DriverName, "a", 3, true, 400, 0))
	for _, c := range []*resourceapi.ResourceClaim{
		indexedClaim("share", allocation(result(DriverName, "a", 0, true, 250, 4<<30))),
		indexedClaim("share2", allocation(result(DriverName, "a", 0, true, 100, 1<<30))),
		indexedClaim("whole", allocation(result(DriverName, "b", 1, false, 0, 0))),
		indexedClaim("two", allocation(result(DriverName, "b", 2, false, 0, 0), result(DriverName, "b", 3, false, 0, 0))),
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
	x.set(cache.DeletedFinalStateUnknown{Key: "ns/two", Obj: indexedClaim("two", allocation(result(DriverName, "b", 2, false, 0, 0), result(DriverName, "b", 3, false, 0, 0)))}, true)
	x.set(indexedClaim("share2", nil), false) // deallocated
	stale := indexedClaim("stale-assumed", allocation(result(DriverName, "a", 2, true, 999, 0)))
	stale.UID = "uid-old"
	tracker := schedulerClaims{
		inFlight: map[types.UID]*resourceapi.AllocationResult{
			"uid-inflight": allocation(result(DriverName, "a", 0, true, 300, 2<<30)),
			"uid-both":     both,
		},
		assumed: map[string]*resourceapi.ResourceClaim{
			"ns/assumed":       indexedClaim("assumed", allocation(result(DriverName, "a", 2, true, 500, 0))),
			"ns/stale-assumed": stale,
		},
	}
	want := map[structured.DeviceID]deviceUsage{
		id("a", 0): {compute: 550, mem: 6 << 30}, // share + inflight; share2 gone
		id("a", 1): {},                           // admin access takes nothing
		id("a", 2): {compute: 500},               // assumed, not the stale copy
		id("a", 3): {compute: 400},               // counted once
		id("b", 1): {whole: 1},
		id("b", 2): {}, // deleted
		id("b", 3): {},
	}
	x.withUsage(tracker, func(usage func(structured.DeviceID) deviceUsage) {
		for d, w := range want {
			if got := usage(d); got != w {
				t.Errorf("usage of %s = %+v, want %+v", d, got, w)
			}
		}
	})
	if len(x.used) != 3 {
		t.Errorf("index keeps %d devices (%v), want the 3 allocated ones in use", len(x.used), x.used)
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
	dev := structured.MakeDeviceID(DriverName, "a", "gpu-0")
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
	claim.Status.Allocation = allocation(result(DriverName, "a", 0, true, 250, 0))
	if _, err := client.ResourceV1().ResourceClaims("ns").UpdateStatus(ctx, claim, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("after allocation", deviceUsage{compute: 250})
	if err := client.ResourceV1().ResourceClaims("ns").Delete(ctx, "c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("after delete", deviceUsage{})
}

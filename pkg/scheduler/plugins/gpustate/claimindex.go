package gpustate

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/dynamic-resource-allocation/structured"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/pkg/gpu"
)

// deviceUsage is what allocations take of one GPU.
type deviceUsage struct {
	compute, mem int64 // consumed capacity of shares
	whole        int   // allocations of the device without consumable capacity
}

func (u *deviceUsage) add(v deviceUsage) {
	u.compute += v.compute
	u.mem += v.mem
	u.whole += v.whole
}

// usageOf is what one allocation takes of each GPU of the driver, as the
// DRA allocator counts it: a result with a share ID consumes its
// ConsumedCapacity, any other result holds the device whole, admin access
// takes nothing.
func usageOf(a *resourceapi.AllocationResult, each func(structured.DeviceID, deviceUsage)) {
	if a == nil {
		return
	}
	for _, r := range a.Devices.Results {
		if r.Driver != gpu.DriverName || ptr.Deref(r.AdminAccess, false) {
			continue
		}
		id := structured.MakeDeviceID(r.Driver, r.Pool, r.Device)
		if r.ShareID == nil {
			each(id, deviceUsage{whole: 1})
			continue
		}
		var u deviceUsage
		if q, ok := r.ConsumedCapacity[gpu.CapacityCompute]; ok {
			u.compute = q.Value()
		}
		if q, ok := r.ConsumedCapacity[gpu.CapacityMemory]; ok {
			u.mem = q.Value()
		}
		each(id, u)
	}
}

type claimRef struct{ namespace, name string }

// claimIndex keeps, from the ResourceClaim informer, the GPU usage of all
// allocated claims summed per device, and the claims the scheduler
// reserved that the informer does not show allocated yet. It replaces
// GatherAllocatedState, which copies the consumed capacity of every device
// in the cluster on each call, and which counts a claim twice while its
// allocation is both in the informer and still in flight.
type claimIndex struct {
	mu        sync.Mutex
	allocated map[types.UID][]deviceUse
	used      map[structured.DeviceID]deviceUsage
	// reserved holds the claims of pods the scheduler reserved
	// (StrataGPUFit's Reserve) until the informer shows them allocated:
	// only those can be in flight or assumed, so only those are looked up
	// in the claim tracker.
	reserved map[types.UID]claimRef
	// applied is the resourceVersion of each claim as the index last
	// applied it (waitApplied).
	applied map[types.UID]int64
	synced  cache.InformerSynced
}

type deviceUse struct {
	id structured.DeviceID
	u  deviceUsage
}

func emptyClaimIndex() *claimIndex {
	return &claimIndex{
		allocated: map[types.UID][]deviceUse{},
		used:      map[structured.DeviceID]deviceUsage{},
		reserved:  map[types.UID]claimRef{},
		applied:   map[types.UID]int64{},
	}
}

// newClaimIndex registers the index on the claim informer.
func newClaimIndex(claims cache.SharedIndexInformer) (*claimIndex, error) {
	x := emptyClaimIndex()
	reg, err := claims.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { x.set(obj, false) },
		UpdateFunc: func(_, obj any) { x.set(obj, false) },
		DeleteFunc: func(obj any) { x.set(obj, true) },
	})
	if err != nil {
		return nil, fmt.Errorf("watch ResourceClaims for GPU usage: %w", err)
	}
	x.synced = reg.HasSynced
	return x, nil
}

func (x *claimIndex) set(obj any, deleted bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	c, ok := obj.(*resourceapi.ResourceClaim)
	if !ok {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, d := range x.allocated[c.UID] {
		u := x.used[d.id]
		u.add(deviceUsage{-d.u.compute, -d.u.mem, -d.u.whole})
		if u == (deviceUsage{}) {
			delete(x.used, d.id)
		} else {
			x.used[d.id] = u
		}
	}
	delete(x.allocated, c.UID)
	if deleted {
		delete(x.applied, c.UID)
	} else {
		x.applied[c.UID] = resourceVersion(c)
	}
	switch {
	case deleted:
		delete(x.reserved, c.UID)
	case c.Status.Allocation != nil:
		delete(x.reserved, c.UID) // counted from the informer from now on
		uses := []deviceUse{}
		usageOf(c.Status.Allocation, func(id structured.DeviceID, u deviceUsage) {
			uses = append(uses, deviceUse{id, u})
			v := x.used[id]
			v.add(u)
			x.used[id] = v
		})
		x.allocated[c.UID] = uses
	}
}

// resourceVersion reads a claim's resourceVersion as the number the API
// server gives it (the scheduler's assume cache reads it the same way);
// 0 if it is not one.
func resourceVersion(c *resourceapi.ResourceClaim) int64 {
	v, _ := strconv.ParseInt(c.ResourceVersion, 10, 64)
	return v
}

// waitApplied waits, at most timeout, until the index has applied a claim
// event the scheduler is handling: for a deleted claim, the delete; for
// another, that version or a later one. The index has its own informer
// handler, with no order against the scheduler's; upstream's allocated
// state is updated before the scheduler's queueing hints see an event, so
// a pod requeued because a claim freed a GPU finds the GPU free. Waiting
// in the hint gives StrataGPUFit's view the same guarantee.
func (x *claimIndex) waitApplied(ctx context.Context, obj any, deleted bool, timeout time.Duration) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = t.Obj, true
	}
	c, ok := obj.(*resourceapi.ResourceClaim)
	if !ok {
		return
	}
	want := resourceVersion(c)
	done := func(context.Context) (bool, error) {
		x.mu.Lock()
		defer x.mu.Unlock()
		v, ok := x.applied[c.UID]
		if deleted {
			return !ok, nil
		}
		return ok && v >= want, nil
	}
	if ok, _ := done(ctx); ok {
		return
	}
	_ = wait.PollUntilContextTimeout(ctx, time.Millisecond, timeout, true, done) // late: judge with what is there
}

// waitSynced waits until the index has seen the informer's initial list
// (the scheduler waits for its informers before the first cycle, not for
// handlers added by plugins).
func (x *claimIndex) waitSynced(ctx context.Context) error {
	if x.synced() {
		return nil
	}
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return x.synced(), nil
	})
	if err != nil {
		return fmt.Errorf("GPU usage index: ResourceClaims not listed yet: %w", err)
	}
	return nil
}

// reserve marks a claim of a pod the scheduler reserved, unless the
// index counts it allocated already. The claim may not have reached the
// index yet (a template's claim, created just before its pod): it is
// marked all the same.
func (x *claimIndex) reserve(uid types.UID, ref claimRef) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.allocated[uid]; !ok {
		x.reserved[uid] = ref
	}
}

// withUsage calls fn with the GPU usage of all allocated claims plus
// those the scheduler allocated that the informer has not delivered yet:
// in flight (reserved, status not written) or assumed (written, event not
// received). fn runs under the index's lock, so that a claim's informer
// event cannot move it between the two parts while fn reads.
//
// Only the claims marked reserved are looked up, so a cycle costs what is
// in flight, not what exists (in the server replay every claim exists
// long before its pod). In-flight is checked before assumed
// because DynamicResources' PreBind assumes a claim before it drops it
// from in flight: a claim moving between the two is seen in one of them.
// A reserved claim that is neither was unreserved, and is forgotten.
func (x *claimIndex) withUsage(tracker fwk.ResourceClaimTracker, fn func(usage func(structured.DeviceID) deviceUsage)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var pending map[structured.DeviceID]deviceUsage
	add := func(id structured.DeviceID, u deviceUsage) {
		if pending == nil {
			pending = map[structured.DeviceID]deviceUsage{}
		}
		v := pending[id]
		v.add(u)
		pending[id] = v
	}
	for uid, ref := range x.reserved {
		if a := tracker.GetPendingAllocation(uid); a != nil {
			usageOf(a, add)
			continue
		}
		if c, err := tracker.Get(ref.namespace, ref.name); err == nil && c.UID == uid && c.Status.Allocation != nil {
			usageOf(c.Status.Allocation, add)
			continue
		}
		delete(x.reserved, uid)
	}
	fn(func(id structured.DeviceID) deviceUsage {
		u := x.used[id]
		if p, ok := pending[id]; ok {
			u.add(p)
		}
		return u
	})
}

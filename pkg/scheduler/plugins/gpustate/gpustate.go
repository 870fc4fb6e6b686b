// Package gpustate connects Strata's GPU scheduling plugins to the
// scheduler: it reads a pod's GPU request from its ResourceClaims and a
// node's GPU state from the framework's DRA view (ResourceSlices of driver
// gpu.strata.dev plus the capacity that allocated claims consume), and
// turns both into the pure model of pkg/gpushare.
package gpustate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/client-go/tools/cache"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/dynamic-resource-allocation/structured"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/strata-dev/strata/pkg/gpu"
	"github.com/strata-dev/strata/pkg/gpushare"
)

// ClaimGetter returns a ResourceClaim by namespace and name.
type ClaimGetter func(namespace, name string) (*resourceapi.ResourceClaim, error)

// DRAClaims reads claims through the framework's SharedDRAManager.
func DRAClaims(m fwk.SharedDRAManager) ClaimGetter {
	return func(ns, name string) (*resourceapi.ResourceClaim, error) {
		return m.ResourceClaims().Get(ns, name)
	}
}

// PodTask is what the pod asks for: CPU and memory as the scheduler counts
// them (containers, init containers and overhead), GPUs from the first
// request of class gpu.strata.dev among its claims: count N whole devices,
// or count 1 with capacity.requests.compute below 1000 for a share, and
// capacity.requests.memory on each. hasGPU is false for a pod without such
// a claim.
func PodTask(pod *v1.Pod, claims ClaimGetter) (t gpushare.Task, hasGPU bool, err error) {
	req := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	t.CPU, t.Mem = req.Cpu().MilliValue(), req.Memory().Value()
	for _, prc := range pod.Spec.ResourceClaims {
		name := ClaimName(pod, prc)
		if name == "" {
			continue // template claim not created yet; DynamicResources waits for it
		}
		claim, err := claims(pod.Namespace, name)
		if err != nil {
			return t, false, fmt.Errorf("claim %s/%s of pod %s: %w", pod.Namespace, name, pod.Name, err)
		}
		for _, r := range claim.Spec.Devices.Requests {
			e := r.Exactly
			if e == nil || e.DeviceClassName != gpu.DriverName {
				continue
			}
			if e.AdminAccess != nil && *e.AdminAccess {
				continue // monitoring access: consumes nothing, fits a full GPU
			}
			t.NumGPU = 1
			if e.AllocationMode == resourceapi.DeviceAllocationModeExactCount && e.Count > 0 {
				t.NumGPU = int(e.Count)
			}
			t.GPUMilli = gpu.MilliPerGPU
			if e.Capacity != nil {
				if q, ok := e.Capacity.Requests[gpu.CapacityCompute]; ok {
					t.GPUMilli = q.Value()
				}
				if q, ok := e.Capacity.Requests[gpu.CapacityMemory]; ok {
					t.GPUMem = q.Value()
				}
			}
			for _, s := range e.Selectors {
				if s.CEL != nil {
					if m := gpu.ModelsFromSelector(s.CEL.Expression); m != nil {
						t.Models = strings.Join(m, "|")
					}
				}
			}
			return t, true, nil
		}
	}
	return t, false, nil
}

// ClaimName is the name of the ResourceClaim behind the pod's claim entry,
// "" while a template's claim has not been created.
func ClaimName(pod *v1.Pod, prc v1.PodResourceClaim) string {
	if prc.ResourceClaimName != nil {
		return *prc.ResourceClaimName
	}
	for _, s := range pod.Status.ResourceClaimStatuses {
		if s.Name == prc.Name && s.ResourceClaimName != nil {
			return *s.ResourceClaimName
		}
	}
	return ""
}

// Source gives the GPU state of nodes.
type Source interface {
	// Nodes returns the state of the named nodes (CPU and memory from the
	// NodeInfos, GPUs from the source), keyed by node name.
	Nodes(ctx context.Context, nodes []fwk.NodeInfo) (map[string]gpushare.Node, error)
}

// baseNode fills CPU and memory left from the scheduler's NodeInfo.
func baseNode(ni fwk.NodeInfo) gpushare.Node {
	a, r := ni.GetAllocatable(), ni.GetRequested()
	return gpushare.Node{
		Name:    ni.Node().Name,
		CPUFree: a.GetMilliCPU() - r.GetMilliCPU(),
		MemFree: a.GetMemory() - r.GetMemory(),
	}
}

// DRAManager returns the handle's DRA view, or an error naming plugin
// when the scheduler runs without DynamicResourceAllocation (every Strata
// GPU plugin reads GPUs and claims through it).
func DRAManager(h fwk.Handle, plugin string) (fwk.SharedDRAManager, error) {
	m := h.SharedDRAManager()
	if m == nil {
		return nil, fmt.Errorf("%s needs the DRA manager (DynamicResourceAllocation enabled)", plugin)
	}
	return m, nil
}

// DRASource reads GPU state from the framework's SharedDRAManager: the
// node-local ResourceSlices of driver gpu.strata.dev give each GPU's index,
// model, compute and memory capacity; allocated claims (from the claim
// informer, kept summed per device) plus those the scheduler has reserved
// and not yet seen back from the informer (Reserve) give the compute and
// memory they consume. A device allocated without consumable capacity
// counts as fully used. It keeps what it read of each ResourceSlice until
// the slice changes. The Strata plugins of one scheduler share one
// (Sources).
type DRASource struct {
	manager fwk.SharedDRAManager
	parsed  *sliceCache
	claims  *claimIndex
}

// NewDRASource returns the DRASource over the scheduler's DRA view;
// claims is the ResourceClaim informer the view is built on.
func NewDRASource(m fwk.SharedDRAManager, claims cache.SharedIndexInformer) (DRASource, error) {
	x, err := newClaimIndex(claims)
	if err != nil {
		return DRASource{}, err
	}
	return DRASource{manager: m, parsed: &sliceCache{}, claims: x}, nil
}

// Reserve marks the unallocated claims of a pod the scheduler has just
// reserved (StrataGPUFit's Reserve), so that later cycles count their
// allocation while it is in flight or assumed; a claim the informer shows
// allocated is counted from there.
func (s DRASource) Reserve(pod *v1.Pod) {
	for _, prc := range pod.Spec.ResourceClaims {
		name := ClaimName(pod, prc)
		if name == "" {
			continue
		}
		if c, err := s.manager.ResourceClaims().Get(pod.Namespace, name); err == nil && c.Status.Allocation == nil {
			s.claims.reserve(c.UID, claimRef{pod.Namespace, name})
		}
	}
}

// WaitApplied waits (at most a second) until the state has applied a
// claim event the scheduler is handling (newObj, or oldObj for a delete),
// so that a queueing hint's decision and the retry it causes see the same
// claims: see claimIndex.waitApplied.
func (s DRASource) WaitApplied(ctx context.Context, oldObj, newObj any) {
	switch {
	case s.claims == nil:
		return // a zero DRASource has no index to wait for
	case newObj == nil:
		s.claims.waitApplied(ctx, oldObj, true, time.Second)
	default:
		s.claims.waitApplied(ctx, newObj, false, time.Second)
	}
}

// Nodes implements Source.
func (s DRASource) Nodes(ctx context.Context, nodes []fwk.NodeInfo) (map[string]gpushare.Node, error) {
	resourceSlices, err := s.manager.ResourceSlices().ListWithDeviceTaintRules()
	if err != nil {
		return nil, err
	}
	if err := s.claims.waitSynced(ctx); err != nil {
		return nil, err
	}
	gpus := s.parsed.get(resourceSlices)
	var out map[string]gpushare.Node
	s.claims.withUsage(s.manager.ResourceClaims(), func(usage func(structured.DeviceID) deviceUsage) {
		out = nodesFromSlices(nodes, gpus, usage)
	})
	return out, nil
}

// sliceGPUs is what the state needs of one node-local ResourceSlice of
// the driver: the slice's node and its GPUs.
type sliceGPUs struct {
	node string
	gpus []sliceGPU
}

type sliceGPU struct {
	id      structured.DeviceID
	index   int
	model   string
	compute int64 // milli-GPU capacity
	mem     int64 // GPU memory capacity, < 0 where the device publishes none
}

// parseSlice reads a ResourceSlice; ok is false for a slice of another
// driver or one not tied to a node.
func parseSlice(sl *resourceapi.ResourceSlice) (p sliceGPUs, ok bool) {
	if sl.Spec.Driver != gpu.DriverName || sl.Spec.NodeName == nil {
		return p, false
	}
	p.node = *sl.Spec.NodeName
	p.gpus = make([]sliceGPU, len(sl.Spec.Devices))
	for i := range sl.Spec.Devices {
		d := &sl.Spec.Devices[i]
		g := sliceGPU{
			id:      structured.MakeDeviceID(sl.Spec.Driver, sl.Spec.Pool.Name, d.Name),
			index:   i,
			compute: gpu.MilliPerGPU,
			mem:     -1,
		}
		if q, ok := d.Capacity[gpu.CapacityCompute]; ok {
			g.compute = q.Value.Value()
		}
		if q, ok := d.Capacity[gpu.CapacityMemory]; ok {
			g.mem = q.Value.Value()
		}
		if a, ok := gpu.Attribute(d, gpu.AttrIndex); ok && a.IntValue != nil {
			g.index = int(*a.IntValue)
		}
		if a, ok := gpu.Attribute(d, gpu.AttrModel); ok && a.StringValue != nil {
			g.model = *a.StringValue
		}
		p.gpus[i] = g
	}
	return p, true
}

// nodeGPUs is what the driver's slices say of one node's GPUs.
type nodeGPUs struct {
	model  string // the first model named
	size   int    // GPU index range: the largest index + 1
	memMax int64  // the largest memory capacity; -1 once a GPU publishes none
	mem    bool   // some GPU publishes memory capacity
	gpus   []sliceGPU
}

func (g *nodeGPUs) add(gpus []sliceGPU) {
	for _, d := range gpus {
		if g.model == "" {
			g.model = d.model
		}
		g.size = max(g.size, d.index+1)
		switch {
		case d.mem < 0:
			g.memMax = -1
		case g.memMax >= 0:
			g.memMax = max(g.memMax, d.mem)
		}
		g.mem = g.mem || d.mem >= 0
	}
	g.gpus = append(g.gpus, gpus...)
}

// fill sets n's GPUs: each one's capacity less what usage says its
// claims consume.
func (g *nodeGPUs) fill(n *gpushare.Node, usage func(structured.DeviceID) deviceUsage) {
	n.Model = g.model
	n.GPUMemMax = max(g.memMax, 0)
	n.GPUFree = make([]int64, g.size)
	if g.mem {
		// A GPU index without a device (or without memory capacity)
		// keeps "no limit".
		n.GPUMemFree = slices.Repeat([]int64{gpushare.NoGPUMemLimit}, g.size)
	}
	for _, d := range g.gpus {
		free, mem := d.compute, d.mem
		if u := usage(d.id); u.whole > 0 {
			free = 0
			if mem > 0 {
				mem = 0 // held whole, memory included
			}
		} else {
			free -= u.compute
			if mem >= 0 {
				mem = max(mem-u.mem, 0)
			}
		}
		n.GPUFree[d.index] = max(free, 0)
		if mem >= 0 {
			n.GPUMemFree[d.index] = mem
		}
	}
}

// sliceCache keeps parseSlice's result per ResourceSlice object, and the
// GPUs of the last list grouped by node. The informer replaces an object
// on every change and never mutates one, so the pointer is the key; a
// list of the same objects (in any order: the lister's is a map's) gives
// the same grouping, and slices gone from the list are dropped.
type sliceCache struct {
	mu     sync.Mutex
	m      map[*resourceapi.ResourceSlice]sliceGPUs
	byNode map[string]*nodeGPUs
}

// get returns the driver's GPUs by node; callers must not modify them.
func (c *sliceCache) get(resourceSlices []*resourceapi.ResourceSlice) map[string]*nodeGPUs {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byNode != nil && c.same(resourceSlices) {
		return c.byNode
	}
	next := make(map[*resourceapi.ResourceSlice]sliceGPUs, len(resourceSlices))
	byNode := map[string]*nodeGPUs{}
	for _, sl := range resourceSlices {
		p, seen := c.m[sl]
		if !seen {
			var ok bool
			if p, ok = parseSlice(sl); !ok {
				p = sliceGPUs{} // remembered as "not ours"
			}
		}
		next[sl] = p
		if p.node == "" || len(p.gpus) == 0 {
			continue
		}
		g := byNode[p.node]
		if g == nil {
			g = &nodeGPUs{}
			byNode[p.node] = g
		}
		g.add(p.gpus)
	}
	c.m, c.byNode = next, byNode
	return byNode
}

// same tells whether resourceSlices are the objects of the last list
// (pointers are unique within a list, so equal lengths and inclusion
// make equal sets).
func (c *sliceCache) same(resourceSlices []*resourceapi.ResourceSlice) bool {
	if len(resourceSlices) != len(c.m) {
		return false
	}
	for _, sl := range resourceSlices {
		if _, ok := c.m[sl]; !ok {
			return false
		}
	}
	return true
}

// nodesFromSlices is the pure part of DRASource.Nodes.
func nodesFromSlices(nodes []fwk.NodeInfo, gpus map[string]*nodeGPUs, usage func(structured.DeviceID) deviceUsage) map[string]gpushare.Node {
	out := make(map[string]gpushare.Node, len(nodes))
	for _, ni := range nodes {
		n := baseNode(ni)
		if g := gpus[n.Name]; g != nil {
			g.fill(&n, usage)
		}
		out[n.Name] = n
	}
	return out
}

// stateKey holds a cycle's pod task and node states in the CycleState,
// shared by all Strata GPU plugins of a profile.
const stateKey fwk.StateKey = "strata.dev/gpustate"

// CycleData is what the first Strata GPU plugin of a cycle computes
// (StrataGPUFit's PreFilter for a GPU pod, else the first scorer's
// PreScore).
type CycleData struct {
	Task   gpushare.Task
	HasGPU bool
	Nodes  map[string]gpushare.Node
}

// Clone implements fwk.StateData; the data is read-only once written.
func (d *CycleData) Clone() fwk.StateData { return d }

// Prepare computes (or reuses) the cycle's data.
func Prepare(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo, src Source, claims ClaimGetter) (*CycleData, error) {
	if d, err := Read(cs); err == nil {
		return d, nil
	}
	t, has, err := PodTask(pod, claims)
	if err != nil {
		return nil, err
	}
	return prepareNodes(ctx, cs, t, has, nodes, src)
}

// PrepareGPU is Prepare for a pod with a GPU request; for any other pod
// it returns nil without reading the nodes' state (which the GPU scorers
// will read, for the nodes that pass Filter, if they need it).
func PrepareGPU(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo, src Source, claims ClaimGetter) (*CycleData, error) {
	if d, err := Read(cs); err == nil {
		return d, nil
	}
	t, has, err := PodTask(pod, claims)
	if err != nil || !has {
		return nil, err
	}
	return prepareNodes(ctx, cs, t, has, nodes, src)
}

func prepareNodes(ctx context.Context, cs fwk.CycleState, t gpushare.Task, has bool, nodes []fwk.NodeInfo, src Source) (*CycleData, error) {
	ns, err := src.Nodes(ctx, nodes)
	if err != nil {
		return nil, err
	}
	d := &CycleData{Task: t, HasGPU: has, Nodes: ns}
	cs.Write(stateKey, d)
	return d, nil
}

// Read returns the cycle's data written by Prepare.
func Read(cs fwk.CycleState) (*CycleData, error) {
	v, err := cs.Read(stateKey)
	if err != nil {
		return nil, err
	}
	d, ok := v.(*CycleData)
	if !ok {
		return nil, fmt.Errorf("cycle state %q has type %T", stateKey, v)
	}
	return d, nil
}

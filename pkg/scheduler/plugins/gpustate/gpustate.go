// Package gpustate connects Strata's GPU scheduling plugins to the
// scheduler: it reads a pod's GPU request from its ResourceClaims and a
// node's GPU state from the framework's DRA view (ResourceSlices of driver
// gpu.strata.dev plus the capacity that allocated claims consume), and
// turns both into the pure model of pkg/gpushare.
package gpustate

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/dynamic-resource-allocation/structured"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/strata-dev/strata/pkg/gpushare"
)

// The resource model shared with the DRA driver (pkg/dra).
const (
	DriverName      = "gpu.strata.dev" // driver and DeviceClass name
	CapacityCompute = "compute"        // milli-GPU, 1000 per device
	CapacityMemory  = "memory"         // GPU memory, bytes
	AttrModel       = "model"
	AttrIndex       = "index"
	AttrUUID        = "uuid"
)

// ClaimGetter returns a ResourceClaim by namespace and name.
type ClaimGetter func(namespace, name string) (*resourceapi.ResourceClaim, error)

// DRAClaims reads claims through the framework's SharedDRAManager.
func DRAClaims(m fwk.SharedDRAManager) ClaimGetter {
	return func(ns, name string) (*resourceapi.ResourceClaim, error) {
		return m.ResourceClaims().Get(ns, name)
	}
}

// ModelSelector is the CEL selector Strata writes for a pod that accepts
// only some GPU models (ModelsFromSelector reads it back).
func ModelSelector(models []string) string {
	q := make([]string, len(models))
	for i, m := range models {
		q[i] = strconv.Quote(m)
	}
	return fmt.Sprintf("device.attributes[%q].%s in [%s]", DriverName, AttrModel, strings.Join(q, ", "))
}

var modelSelRE = regexp.MustCompile(`^device\.attributes\["` + regexp.QuoteMeta(DriverName) + `"\]\.model in \[(.*)\]$`)

// ModelsFromSelector returns the models of a selector ModelSelector wrote,
// or nil for any other expression.
func ModelsFromSelector(expr string) []string {
	m := modelSelRE.FindStringSubmatch(strings.TrimSpace(expr))
	if m == nil {
		return nil
	}
	var out []string
	for _, s := range strings.Split(m[1], ",") {
		if u, err := strconv.Unquote(strings.TrimSpace(s)); err == nil {
			out = append(out, u)
		}
	}
	return out
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
		name := claimName(pod, prc)
		if name == "" {
			continue // template claim not created yet; DynamicResources waits for it
		}
		claim, err := claims(pod.Namespace, name)
		if err != nil {
			return t, false, fmt.Errorf("claim %s/%s of pod %s: %w", pod.Namespace, name, pod.Name, err)
		}
		for _, r := range claim.Spec.Devices.Requests {
			e := r.Exactly
			if e == nil || e.DeviceClassName != DriverName {
				continue
			}
			t.NumGPU = 1
			if e.AllocationMode == resourceapi.DeviceAllocationModeExactCount && e.Count > 0 {
				t.NumGPU = int(e.Count)
			}
			t.GPUMilli = gpushare.MilliPerGPU
			if e.Capacity != nil {
				if q, ok := e.Capacity.Requests[CapacityCompute]; ok {
					t.GPUMilli = q.Value()
				}
				if q, ok := e.Capacity.Requests[CapacityMemory]; ok {
					t.GPUMem = q.Value()
				}
			}
			for _, s := range e.Selectors {
				if s.CEL != nil {
					if m := ModelsFromSelector(s.CEL.Expression); m != nil {
						t.Models = strings.Join(m, "|")
					}
				}
			}
			return t, true, nil
		}
	}
	return t, false, nil
}

func claimName(pod *v1.Pod, prc v1.PodResourceClaim) string {
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

// DRASource reads GPU state from the framework's SharedDRAManager: the
// node-local ResourceSlices of driver gpu.strata.dev give each GPU's index,
// model, compute and memory capacity; the allocated state (allocated
// claims plus those the scheduler has in flight) gives the compute and
// memory they consume. A device allocated without consumable capacity
// counts as fully used.
type DRASource struct {
	Manager fwk.SharedDRAManager
}

// Nodes implements Source.
func (s DRASource) Nodes(ctx context.Context, nodes []fwk.NodeInfo) (map[string]gpushare.Node, error) {
	slices, err := s.Manager.ResourceSlices().ListWithDeviceTaintRules()
	if err != nil {
		return nil, err
	}
	alloc, err := gatherAllocatedState(ctx, s.Manager.ResourceClaims())
	if err != nil {
		return nil, err
	}
	return NodesFromDRA(nodes, slices, alloc), nil
}

// errConcurrentModification is the text of the claim tracker's
// (unexported) error for "a claim moved from in flight to the cache while
// the state was gathered: try again".
const errConcurrentModification = "conflicting concurrent modification"

// gatherAllocatedState retries GatherAllocatedState while it reports a
// concurrent modification, as DynamicResources' PreFilter does (up to 5 s).
// Without the retry the pod's cycle fails with an error and the pod goes to
// backoff, behind pods that arrived after it (seen in the server replay,
// bench/gputrace --mode server, about 6 pods in 1,000).
func gatherAllocatedState(ctx context.Context, claims fwk.ResourceClaimTracker) (*structured.AllocatedState, error) {
	var alloc *structured.AllocatedState
	err := wait.PollUntilContextTimeout(ctx, time.Microsecond, 5*time.Second, true, func(context.Context) (bool, error) {
		var err error
		alloc, err = claims.GatherAllocatedState()
		if err != nil && err.Error() == errConcurrentModification {
			return false, nil
		}
		return err == nil, err
	})
	return alloc, err
}

// NodesFromDRA is the pure part of DRASource.Nodes.
func NodesFromDRA(nodes []fwk.NodeInfo, resourceSlices []*resourceapi.ResourceSlice, alloc *structured.AllocatedState) map[string]gpushare.Node {
	out := make(map[string]gpushare.Node, len(nodes))
	for _, ni := range nodes {
		out[ni.Node().Name] = baseNode(ni)
	}
	type dev struct {
		index     int
		free, mem int64 // mem < 0: the device publishes no memory capacity
	}
	devs := map[string][]dev{}
	for _, sl := range resourceSlices {
		if sl.Spec.Driver != DriverName || sl.Spec.NodeName == nil {
			continue
		}
		nodeName := *sl.Spec.NodeName
		n, ok := out[nodeName]
		if !ok {
			continue
		}
		for i := range sl.Spec.Devices {
			d := &sl.Spec.Devices[i]
			capQ, ok := d.Capacity[CapacityCompute]
			total := int64(gpushare.MilliPerGPU)
			if ok {
				total = capQ.Value.Value()
			}
			index := i
			if a, ok := attr(d, AttrIndex); ok && a.IntValue != nil {
				index = int(*a.IntValue)
			}
			if a, ok := attr(d, AttrModel); ok && a.StringValue != nil && n.Model == "" {
				n.Model = *a.StringValue
				out[nodeName] = n
			}
			free, mem := total, int64(-1)
			if memQ, ok := d.Capacity[CapacityMemory]; ok {
				mem = memQ.Value.Value()
			}
			if alloc != nil {
				id := structured.MakeDeviceID(sl.Spec.Driver, sl.Spec.Pool.Name, d.Name)
				if alloc.AllocatedDevices.Has(id) {
					free = 0
					if mem > 0 {
						mem = 0 // held whole, memory included
					}
				} else if used, ok := alloc.AggregatedCapacity[id]; ok {
					if q, ok := used[CapacityCompute]; ok && q != nil {
						free -= q.Value()
					}
					if q, ok := used[CapacityMemory]; ok && q != nil && mem >= 0 {
						mem = max(mem-q.Value(), 0)
					}
				}
			}
			devs[nodeName] = append(devs[nodeName], dev{index, max(free, 0), mem})
		}
	}
	for name, ds := range devs {
		n := out[name]
		size := 0
		for _, d := range ds {
			size = max(size, d.index+1)
		}
		n.GPUFree = make([]int64, size)
		for _, d := range ds {
			n.GPUFree[d.index] = d.free
			if d.mem >= 0 {
				if n.GPUMemFree == nil {
					// A GPU index without a device (or without memory
					// capacity) keeps "no limit".
					n.GPUMemFree = slices.Repeat([]int64{gpushare.NoGPUMemLimit}, size)
				}
				n.GPUMemFree[d.index] = d.mem
			}
		}
		out[name] = n
	}
	return out
}

func attr(d *resourceapi.Device, name string) (resourceapi.DeviceAttribute, bool) {
	if a, ok := d.Attributes[resourceapi.QualifiedName(name)]; ok {
		return a, true
	}
	a, ok := d.Attributes[resourceapi.QualifiedName(DriverName+"/"+name)]
	return a, ok
}

// stateKey holds a cycle's pod task and node states in the CycleState,
// shared by all Strata GPU plugins of a profile.
const stateKey fwk.StateKey = "strata.dev/gpustate"

// CycleData is what the first Strata GPU plugin of a cycle computes.
type CycleData struct {
	Task   gpushare.Task
	HasGPU bool
	Nodes  map[string]gpushare.Node
}

// Clone implements fwk.StateData; the data is read-only after PreScore.
func (d *CycleData) Clone() fwk.StateData { return d }

// Prepare computes (or reuses) the cycle's data.
func Prepare(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo, src Source, claims ClaimGetter) (*CycleData, error) {
	if v, err := cs.Read(stateKey); err == nil {
		if d, ok := v.(*CycleData); ok {
			return d, nil
		}
	}
	t, has, err := PodTask(pod, claims)
	if err != nil {
		return nil, err
	}
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

// Package gpusim is the StrataGPUSim plugin: Filter and Reserve for GPUs on
// an in-memory gpustate.Store instead of DRA. Only the trace replay uses
// it, so that the full trace replays in minutes rather than through the
// DRA allocator; the product uses the in-tree DynamicResources plugin,
// whose Filter/Reserve this one mirrors on the same resource model (see
// pkg/scheduler/plugins/README.md, "Replay versus product", for what
// differs). It is internal to the benchmark, so that nothing in the product can
// come to depend on it.
package gpusim

import (
	"context"
	"fmt"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	fwk "k8s.io/kube-scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/strata-dev/strata/pkg/gpushare"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpustate"
)

// Name is the plugin name in the scheduler profile.
const Name = "StrataGPUSim"

// Allocation is where a pod's GPUs went.
type Allocation struct {
	Node string
	GPUs []int
	Task gpushare.Task
}

// Plugin filters and reserves GPUs on a Store.
type Plugin struct {
	h      fwk.Handle
	store  *gpustate.Store
	picker func(n gpushare.Node, t gpushare.Task) []int

	mu    sync.Mutex
	alloc map[types.UID]Allocation
}

var (
	_ fwk.PreFilterPlugin = &Plugin{}
	_ fwk.FilterPlugin    = &Plugin{}
	_ fwk.ReservePlugin   = &Plugin{}
)

// Factory returns a plugin factory over the store; picker chooses the GPUs
// on the chosen node (gpushare.PickFirst is what DRA's allocator does).
// The created plugin is also handed to got, if not nil.
func Factory(store *gpustate.Store, picker gpushare.Picker, got func(*Plugin)) frameworkruntime.PluginFactory {
	return func(_ context.Context, _ runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
		p := &Plugin{h: h, store: store, picker: picker, alloc: map[types.UID]Allocation{}}
		if got != nil {
			got(p)
		}
		return p, nil
	}
}

// Name implements fwk.Plugin.
func (p *Plugin) Name() string { return Name }

const taskKey fwk.StateKey = "strata.dev/gpusim"

type taskState struct{ t gpushare.Task }

func (s *taskState) Clone() fwk.StateData { return s }

// PreFilter reads the pod's GPU request from its claims; pods without one
// skip this plugin.
func (p *Plugin) PreFilter(_ context.Context, cs fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	t, has, err := gpustate.PodTask(pod, p.store.Claims)
	if err != nil {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	if !has {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	cs.Write(taskKey, &taskState{t})
	return nil, nil
}

// PreFilterExtensions implements fwk.PreFilterPlugin.
func (p *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// Filter accepts a node whose GPUs can hold the request (model, and either
// one GPU with enough compute left or N fully free GPUs).
func (p *Plugin) Filter(_ context.Context, cs fwk.CycleState, _ *v1.Pod, ni fwk.NodeInfo) *fwk.Status {
	v, err := cs.Read(taskKey)
	if err != nil {
		return fwk.AsStatus(err)
	}
	n, _ := p.store.GPUs(ni.Node().Name)
	if !gpushare.FitsGPU(n, v.(*taskState).t) {
		return fwk.NewStatus(fwk.Unschedulable, "insufficient GPU")
	}
	return nil
}

// Reserve picks the GPUs on the node and takes them in the store.
func (p *Plugin) Reserve(_ context.Context, cs fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	v, err := cs.Read(taskKey)
	if err != nil {
		return nil // no GPU request
	}
	t := v.(*taskState).t
	ni, err := p.h.SnapshotSharedLister().NodeInfos().Get(nodeName)
	if err != nil {
		return fwk.AsStatus(err)
	}
	var gpus []int
	err = p.store.Update(nodeName, func(g *gpushare.Node) error {
		n := p.store.NodeLocked(ni, g)
		gpus = p.picker(n, t)
		if gpus == nil {
			return fmt.Errorf("no GPU on %s fits %s", nodeName, t)
		}
		return gpushare.Place(g, gpushare.Task{NumGPU: t.NumGPU, GPUMilli: t.GPUMilli}, gpus)
	})
	if err != nil {
		return fwk.AsStatus(err)
	}
	p.mu.Lock()
	p.alloc[pod.UID] = Allocation{Node: nodeName, GPUs: gpus, Task: t}
	p.mu.Unlock()
	return nil
}

// Unreserve gives the GPUs back.
func (p *Plugin) Unreserve(_ context.Context, _ fwk.CycleState, pod *v1.Pod, nodeName string) {
	p.mu.Lock()
	a, ok := p.alloc[pod.UID]
	delete(p.alloc, pod.UID)
	p.mu.Unlock()
	if !ok {
		return
	}
	_ = p.store.Update(nodeName, func(g *gpushare.Node) error {
		gpushare.Release(g, gpushare.Task{NumGPU: a.Task.NumGPU, GPUMilli: a.Task.GPUMilli}, a.GPUs)
		return nil
	})
}

// Allocation returns where the pod's GPUs went.
func (p *Plugin) Allocation(uid types.UID) (Allocation, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.alloc[uid]
	return a, ok
}

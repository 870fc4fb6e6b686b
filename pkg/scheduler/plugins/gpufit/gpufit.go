// Package gpufit is the StrataGPUFit filter: it turns away the nodes whose
// Strata GPUs cannot hold a pod's GPU request before DynamicResources runs
// its allocator on them.
//
// DynamicResources' Filter is the scheduler's most expensive step for a GPU
// pod: for every node it runs the structured allocator, which evaluates
// every device's CEL selectors and the consumable capacity of every claim
// sharing it (the largest part of the scheduler's CPU in the trace replay;
// see bench/RESULTS.md, Decisions). Once a cluster fills up, most nodes have
// no GPU left that could take the pod, and the node state Strata's scorers
// read anyway (package gpustate) says so in a few comparisons. This filter
// rejects only what DynamicResources would reject too: it reads the same
// ResourceSlices and the same allocated and in-flight claims (through its
// own index, which can trail the claim informer by an event: the queueing
// hint waits for the index, so a pod turned away in that window is retried
// once the index has caught up), and the checks it makes (compute and GPU
// memory left per GPU, count of GPUs) are necessary conditions of the
// allocation. Everything it cannot judge is left to DynamicResources: pods
// whose claim is already allocated, devices of driver gpu.strata.dev
// published for more than one node, model and other CEL selectors,
// constraints.
package gpufit

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/strata-dev/strata/pkg/gpu"
	"github.com/strata-dev/strata/pkg/gpushare"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpustate"
)

// Name is the plugin name in the scheduler profile.
const Name = "StrataGPUFit"

// Plugin is the StrataGPUFit PreFilter and Filter.
type Plugin struct {
	m   fwk.SharedDRAManager
	src gpustate.DRASource
}

var (
	_ fwk.PreFilterPlugin   = &Plugin{}
	_ fwk.FilterPlugin      = &Plugin{}
	_ fwk.ReservePlugin     = &Plugin{}
	_ fwk.EnqueueExtensions = &Plugin{}
)

// New returns the plugin factory over the scheduler's shared GPU state,
// for app.WithPlugin(gpufit.Name, gpufit.New(sources)).
func New(sources *gpustate.Sources) frameworkruntime.PluginFactory {
	return func(_ context.Context, _ runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
		m, src, err := sources.Handle(h, Name)
		if err != nil {
			return nil, err
		}
		return &Plugin{m: m, src: src}, nil
	}
}

// Name implements fwk.Plugin.
func (p *Plugin) Name() string { return Name }

// PreFilter reads the pod's GPU request and the GPU state of all nodes
// into the cycle state the scorers share (they would read it in PreScore
// otherwise). Pods without a request it can judge skip Filter.
func (p *Plugin) PreFilter(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	if len(pod.Spec.ResourceClaims) == 0 {
		return nil, fwk.NewStatus(fwk.Skip) // no GPU asked
	}
	claims := gpustate.DRAClaims(p.m)
	if judge, err := p.canJudge(pod, claims); err != nil || !judge {
		// A claim that is not there yet is DynamicResources' to report.
		return nil, fwk.NewStatus(fwk.Skip)
	}
	d, err := gpustate.PrepareGPU(ctx, cs, pod, nodes, p.src, claims)
	if err != nil {
		return nil, fwk.AsStatus(fmt.Errorf("%s: %w", Name, err))
	}
	if d == nil || !d.HasGPU {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	return nil, nil
}

// Reserve tells the shared GPU state which claims the pod's cycle is
// allocating, so that the next cycles count them until the informer shows
// them allocated (gpustate.DRASource.Reserve).
func (p *Plugin) Reserve(_ context.Context, _ fwk.CycleState, pod *v1.Pod, _ string) *fwk.Status {
	p.src.Reserve(pod)
	return nil
}

// Unreserve implements fwk.ReservePlugin; the state forgets a claim that is
// no longer in flight by itself.
func (p *Plugin) Unreserve(context.Context, fwk.CycleState, *v1.Pod, string) {}

// canJudge reports whether the node state decides whether the pod's GPU
// request could fit: not when one of its claims is allocated already
// (DynamicResources then only checks that node's allocation, which needs
// no free capacity), nor when some gpu.strata.dev devices are not tied to
// one node (the state has them on no node).
func (p *Plugin) canJudge(pod *v1.Pod, claims gpustate.ClaimGetter) (bool, error) {
	for _, prc := range pod.Spec.ResourceClaims {
		name := gpustate.ClaimName(pod, prc)
		if name == "" {
			return false, nil
		}
		c, err := claims(pod.Namespace, name)
		if err != nil {
			return false, err
		}
		if c.Status.Allocation != nil {
			return false, nil
		}
	}
	slices, err := p.m.ResourceSlices().ListWithDeviceTaintRules()
	if err != nil {
		return false, err
	}
	for _, sl := range slices {
		if sl.Spec.Driver == gpu.DriverName && sl.Spec.NodeName == nil {
			return false, nil
		}
	}
	return true, nil
}

// EventsToRegister implements fwk.EnqueueExtensions: a pod this filter
// turned away is worth another try only when GPU room may have appeared,
// the events DynamicResources waits for in the same case. Without it the
// scheduler would retry such pods on every event of the cluster (seen in
// the trace replay, where each unschedulable pod was tried several times;
// see bench/RESULTS.md, Decisions).
func (p *Plugin) EventsToRegister(context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add}},
		{Event: fwk.ClusterEvent{Resource: fwk.ResourceSlice, ActionType: fwk.Add | fwk.Update}},
		{Event: fwk.ClusterEvent{Resource: fwk.ResourceClaim, ActionType: fwk.Update | fwk.Delete}, QueueingHintFn: p.afterClaimChange},
	}, nil
}

// afterClaimChange queues the pod when a claim gave its devices back
// (deallocated, or deleted while allocated) or when one of the pod's own
// claims changed (allocated elsewhere, it is no longer this filter's to
// judge).
func (p *Plugin) afterClaimChange(_ klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	// The pod's retry must see this change in the GPU state.
	p.src.WaitApplied(context.Background(), oldObj, newObj)
	if _, unknown := oldObj.(cache.DeletedFinalStateUnknown); unknown {
		return fwk.Queue, nil
	}
	oldClaim, _ := oldObj.(*resourceapi.ResourceClaim)
	newClaim, _ := newObj.(*resourceapi.ResourceClaim)
	switch {
	case oldClaim != nil && oldClaim.Status.Allocation != nil && (newClaim == nil || newClaim.Status.Allocation == nil):
		return fwk.Queue, nil
	case newClaim == nil || newClaim.Namespace != pod.Namespace:
		return fwk.QueueSkip, nil
	}
	for _, prc := range pod.Spec.ResourceClaims {
		if gpustate.ClaimName(pod, prc) == newClaim.Name {
			return fwk.Queue, nil
		}
	}
	return fwk.QueueSkip, nil
}

// PreFilterExtensions implements fwk.PreFilterPlugin. Preemption's
// what-if (removing pods) does not change the GPU state this filter reads,
// as it does not change DynamicResources'; StrataGPUPreemption frees GPUs
// with its own simulation.
func (p *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// Filter rejects a node whose GPUs cannot hold the request, as
// UnschedulableAndUnresolvable with the reason: DynamicResources reports
// a node without room for a claim the same way ("cannot allocate all
// claims"), so upstream's preemption skips both alike.
func (p *Plugin) Filter(_ context.Context, cs fwk.CycleState, _ *v1.Pod, ni fwk.NodeInfo) *fwk.Status {
	d, err := gpustate.Read(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	n, ok := d.Nodes[ni.Node().Name]
	if !ok {
		return nil // a node added since PreFilter: DynamicResources judges it
	}
	if reason := Reject(n, d.Task); reason != "" {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, reason)
	}
	return nil
}

// Reject returns why the node's GPUs cannot hold the task's GPU request,
// or "" if they might. The model is left out: the state keeps one model
// per node and a node may mix models; DynamicResources checks selectors.
func Reject(n gpushare.Node, t gpushare.Task) string {
	if t.NumGPU == 0 {
		return ""
	}
	t.Models = ""
	if gpushare.FitsGPU(n, t) {
		return ""
	}
	if len(n.GPUFree) == 0 {
		return "node has no " + gpu.DriverName + " GPU"
	}
	if t.GPUMem > n.GPUMemMax && n.GPUMemMax > 0 {
		return fmt.Sprintf("no %s GPU here has %s of memory (the largest has %s)", gpu.DriverName, bytes(t.GPUMem), bytes(n.GPUMemMax))
	}
	what := "wholly free"
	if t.GPUMilli < gpu.MilliPerGPU {
		what = fmt.Sprintf("with %d milli-GPU free", t.GPUMilli)
	}
	if t.GPUMem > 0 {
		what += " and " + bytes(t.GPUMem) + " of GPU memory free"
	}
	if t.NumGPU == 1 {
		return fmt.Sprintf("no %s GPU %s", gpu.DriverName, what)
	}
	return fmt.Sprintf("fewer than %d %s GPUs %s", t.NumGPU, gpu.DriverName, what)
}

func bytes(n int64) string { return resource.NewQuantity(n, resource.BinarySI).String() }

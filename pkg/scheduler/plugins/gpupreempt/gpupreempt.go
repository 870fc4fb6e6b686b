// Package gpupreempt is a PostFilter plugin that preempts lower-priority
// GPU pods (a gang's scheduled pods together) for a GPU pod that cannot be
// placed. Upstream's DefaultPreemption
// cannot help there: DynamicResources has no PreFilterExtensions, so
// removing a victim in the preemption simulation frees none of its devices
// and every GPU preemption is "not helpful". This plugin runs after it and
// simulates on the GPU model instead: which lower-priority pods' GPU shares,
// once released, let the pod fit.
package gpupreempt

import (
	"context"
	"fmt"
	"k8s.io/utils/ptr"
	"math"
	"sort"
	"time"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	schedulinglisters "k8s.io/client-go/listers/scheduling/v1beta1"
	resourcehelper "k8s.io/component-helpers/resource"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	pluginnames "k8s.io/kubernetes/pkg/scheduler/framework/plugins/names"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/strata-dev/strata/pkg/gpu"
	"github.com/strata-dev/strata/pkg/gpushare"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpufit"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpustate"
)

// Name is the plugin's name in scheduler profiles.
const Name = "StrataGPUPreemption"

// Plugin preempts best-effort GPU pods for higher-priority ones.
type Plugin struct {
	h         fwk.Handle
	podGroups schedulinglisters.PodGroupLister
	gpus      gpustate.DRASource
}

var _ fwk.PostFilterPlugin = &Plugin{}

// New returns the plugin factory over the scheduler's shared GPU state.
func New(sources *gpustate.Sources) frameworkruntime.PluginFactory {
	return func(_ context.Context, _ runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
		_, src, err := sources.Handle(h, Name)
		if err != nil {
			return nil, err
		}
		return &Plugin{h: h, podGroups: h.SharedInformerFactory().Scheduling().V1beta1().PodGroups().Lister(),
			gpus: src}, nil
	}
}

// Name implements fwk.Plugin.
func (p *Plugin) Name() string { return Name }

// victim is what preemption removes as one: a lower-priority pod, or all
// the scheduled pods of a lower-priority PodGroup whose disruptionMode is
// All (upstream's unit of preemption for gangs that are useless with a
// member gone), with what its pods on the candidate node release there.
type victim struct {
	pods []*v1.Pod // every pod to delete, on any node
	// Released on the candidate node: milli-GPU and GPU memory (bytes)
	// per GPU index, milli-CPU and memory (bytes).
	held     map[int]gpuHold
	cpu, mem int64
	prio     int32     // the highest priority among its pods
	newest   time.Time // the newest of its pods
}

// noRoom is PostFilter's answer when no node's victims make room.
const noRoom = "no lower-priority GPU pods whose GPUs would make room"

// PostFilter implements fwk.PostFilterPlugin.
func (p *Plugin) PostFilter(ctx context.Context, _ fwk.CycleState, pod *v1.Pod, filtered fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == v1.PreemptNever {
		return nil, fwk.NewStatus(fwk.Unschedulable, "pod never preempts")
	}
	lister := p.h.SnapshotSharedLister().NodeInfos()
	if node, waiting := awaitingVictims(pod, lister); waiting {
		return nil, fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("waiting for the pods preempted on node %s to terminate", node))
	}
	mgr := p.h.SharedDRAManager()
	claims := gpustate.DRAClaims(mgr)
	task, hasGPU, err := gpustate.PodTask(pod, claims)
	if err != nil || !hasGPU {
		return nil, fwk.NewStatus(fwk.Unschedulable, "not a GPU pod")
	}
	all, err := lister.List()
	if err != nil {
		return nil, fwk.AsStatus(err)
	}
	prio := corev1helpers.PodPriority(pod)
	unitOf := p.disruptionUnit
	gangs := gangMembers(all, unitOf) // members may run on any node
	// Only nodes with candidates can make room (selectVictims never
	// chooses evicting nothing): the GPU state is read for those alone,
	// none at all when no lower-priority pod holds a GPU.
	var nodes []fwk.NodeInfo
	cands := map[string][]victim{}
	for _, ni := range all {
		name := ni.Node().Name
		if !mightHelp(filtered.Get(name)) {
			continue
		}
		if c := candidates(ni, prio, unitOf, gangs, claims); len(c) > 0 {
			nodes = append(nodes, ni)
			cands[name] = c
		}
	}
	if len(nodes) == 0 {
		return nil, fwk.NewStatus(fwk.Unschedulable, noRoom)
	}
	state, err := p.gpus.Nodes(ctx, nodes)
	if err != nil {
		return nil, fwk.AsStatus(err)
	}
	var bestNode string
	var best []victim
	for _, ni := range nodes {
		n, ok := state[ni.Node().Name]
		if !ok || len(n.GPUFree) == 0 {
			continue
		}
		vs, ok := selectVictims(n, task, cands[ni.Node().Name])
		if ok && (bestNode == "" || podCount(vs) < podCount(best)) {
			bestNode, best = ni.Node().Name, vs
		}
	}
	if bestNode == "" {
		return nil, fwk.NewStatus(fwk.Unschedulable, noRoom)
	}
	for _, v := range best {
		for _, vp := range v.pods {
			if err := p.evict(ctx, pod, vp, bestNode); err != nil {
				return nil, fwk.AsStatus(err)
			}
		}
	}
	return &fwk.PostFilterResult{NominatingInfo: &fwk.NominatingInfo{NominatedNodeName: bestNode, NominatingMode: fwk.ModeOverride}},
		fwk.NewStatus(fwk.Success)
}

// mightHelp reports whether evicting pods from a node could let the pod
// in, given why Filter turned it away there. Upstream's preemption skips
// UnschedulableAndUnresolvable nodes (a taint or node affinity the pod
// does not match stays whatever is evicted); but DynamicResources reports
// a full GPU that way too ("cannot allocate all claims"), as StrataGPUFit
// does, and GPUs are what this plugin frees, so their rejections count as
// resolvable here.
func mightHelp(st *fwk.Status) bool {
	switch {
	case st.Code() == fwk.Unschedulable:
		return true
	case st.Code() == fwk.UnschedulableAndUnresolvable:
		return st.Plugin() == pluginnames.DynamicResources || st.Plugin() == gpufit.Name
	}
	return false
}

// awaitingVictims reports whether the pod already preempted pods on its
// nominated node that are still terminating: their GPUs come back when
// they are gone, and preempting again meanwhile would evict more pods than
// needed (upstream's DefaultPreemption waits in the same case).
func awaitingVictims(pod *v1.Pod, lister fwk.NodeInfoLister) (string, bool) {
	node := pod.Status.NominatedNodeName
	if node == "" {
		return "", false
	}
	ni, err := lister.Get(node)
	if err != nil {
		return "", false // the node is gone: preempt elsewhere
	}
	prio := corev1helpers.PodPriority(pod)
	for _, pi := range ni.GetPods() {
		if vp := pi.GetPod(); vp.DeletionTimestamp != nil && corev1helpers.PodPriority(vp) < prio {
			return node, true
		}
	}
	return "", false
}

// disruptionUnit names the PodGroup a pod must be preempted with, "" if
// it may go alone: its PodGroup's spec.disruptionMode is All (default
// Single), as upstream's preemption reads it.
func (p *Plugin) disruptionUnit(pod *v1.Pod) string {
	g := pod.Spec.SchedulingGroup
	if g == nil || g.PodGroupName == nil {
		return ""
	}
	pg, err := p.podGroups.PodGroups(pod.Namespace).Get(*g.PodGroupName)
	if err != nil || pg.Spec.DisruptionMode == nil || pg.Spec.DisruptionMode.All == nil {
		return ""
	}
	return pod.Namespace + "/" + pg.Name
}

// gangMembers indexes the scheduled pods of every disruption unit.
func gangMembers(nodes []fwk.NodeInfo, unitOf func(*v1.Pod) string) map[string][]*v1.Pod {
	gangs := map[string][]*v1.Pod{}
	for _, ni := range nodes {
		for _, pi := range ni.GetPods() {
			if k := unitOf(pi.GetPod()); k != "" {
				gangs[k] = append(gangs[k], pi.GetPod())
			}
		}
	}
	return gangs
}

// candidates are the victims the node offers to a pod of priority prio:
// its lower-priority pods holding GPUs, the members of a disruption unit
// taken together (only if all of them have a lower priority and none is
// terminating).
func candidates(ni fwk.NodeInfo, prio int32, unitOf func(*v1.Pod) string, gangs map[string][]*v1.Pod, claims gpustate.ClaimGetter) []victim {
	node := ni.Node().Name
	var out []victim
	seen := map[string]bool{}
	for _, pi := range ni.GetPods() {
		vp := pi.GetPod()
		if corev1helpers.PodPriority(vp) >= prio || vp.DeletionTimestamp != nil || len(gpuHeld(vp, claims)) == 0 {
			continue
		}
		pods := []*v1.Pod{vp}
		if k := unitOf(vp); k != "" {
			if seen[k] {
				continue
			}
			seen[k] = true
			pods = gangs[k]
		}
		v, ok := makeVictim(pods, node, prio, claims)
		if ok {
			out = append(out, v)
		}
	}
	return out
}

// makeVictim sums what pods release on node; ok is false if one of them
// may not be preempted by priority prio or is already terminating.
func makeVictim(pods []*v1.Pod, node string, prio int32, claims gpustate.ClaimGetter) (victim, bool) {
	v := victim{pods: pods, held: map[int]gpuHold{}, prio: math.MinInt32}
	for _, vp := range pods {
		pp := corev1helpers.PodPriority(vp)
		if pp >= prio || vp.DeletionTimestamp != nil {
			return victim{}, false
		}
		v.prio = max(v.prio, pp)
		if t := vp.CreationTimestamp.Time; t.After(v.newest) {
			v.newest = t
		}
		if vp.Spec.NodeName != node {
			continue
		}
		for i, h := range gpuHeld(vp, claims) {
			v.held[i] = v.held[i].add(h, 1)
		}
		req := resourcehelper.PodRequests(vp, resourcehelper.PodResourcesOptions{})
		v.cpu += req.Cpu().MilliValue()
		v.mem += req.Memory().Value()
	}
	return v, true
}

func podCount(vs []victim) int {
	n := 0
	for _, v := range vs {
		n += len(v.pods)
	}
	return n
}

// selectVictims releases the lowest-priority (then newest) candidates
// until the task fits the node (GPU compute and memory, CPU and memory),
// then gives back any victim the fit does not need. ok is false when even
// all candidates do not make room, and when the task fits without any:
// then what keeps the pod off the node is something this model does not
// see (another Filter), and evicting nothing would only nominate the node.
func selectVictims(n gpushare.Node, t gpushare.Task, cands []victim) ([]victim, bool) {
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].prio != cands[j].prio {
			return cands[i].prio < cands[j].prio
		}
		return cands[i].newest.After(cands[j].newest)
	})
	free := n.Clone()
	var chosen []victim
	for _, c := range cands {
		if gpushare.Fits(free, t) {
			break
		}
		release(&free, c, 1)
		chosen = append(chosen, c)
	}
	if len(chosen) == 0 || !gpushare.Fits(free, t) {
		return nil, false
	}
	// Reprieve: most important first, keep a victim if the pod still fits.
	for i := len(chosen) - 1; i >= 0; i-- {
		release(&free, chosen[i], -1)
		if gpushare.Fits(free, t) {
			chosen = append(chosen[:i], chosen[i+1:]...)
			continue
		}
		release(&free, chosen[i], 1)
	}
	return chosen, true
}

func release(n *gpushare.Node, v victim, sign int64) {
	for i, h := range v.held {
		n.AddToGPU(i, sign*h.milli, sign*h.mem)
	}
	n.CPUFree += sign * v.cpu
	n.MemFree += sign * v.mem
}

// gpuHold is what claims hold on one GPU.
type gpuHold struct {
	milli int64 // compute, milli-GPU
	mem   int64 // GPU memory, bytes
}

func (h gpuHold) add(o gpuHold, sign int64) gpuHold {
	return gpuHold{h.milli + sign*o.milli, h.mem + sign*o.mem}
}

// gpuHeld is what the pod's allocated claims hold per GPU index. A device
// allocated without consumable capacity is held whole in compute; its
// memory is not known from the claim (the state counts it as all used) and
// is not given back in the simulation.
func gpuHeld(pod *v1.Pod, claims gpustate.ClaimGetter) map[int]gpuHold {
	held := map[int]gpuHold{}
	for _, s := range pod.Status.ResourceClaimStatuses {
		if s.ResourceClaimName == nil {
			continue
		}
		c, err := claims(pod.Namespace, *s.ResourceClaimName)
		if err != nil || c.Status.Allocation == nil {
			continue
		}
		for _, r := range c.Status.Allocation.Devices.Results {
			idx, ok := deviceIndex(r)
			// Admin access takes no capacity, as the allocator counts it
			// (gpustate's usageOf): evicting its pod frees nothing.
			if !ok || ptr.Deref(r.AdminAccess, false) {
				continue
			}
			var h gpuHold
			h.milli, h.mem = gpu.Consumed(&r)
			held[idx] = held[idx].add(h, 1)
		}
	}
	return held
}

// deviceIndex reads the GPU index from the name of the driver's device.
func deviceIndex(r resourceapi.DeviceRequestAllocationResult) (int, bool) {
	if r.Driver != gpu.DriverName {
		return 0, false
	}
	return gpu.DeviceIndex(r.Device)
}

// evict deletes a victim the way upstream preemption does: a
// DisruptionTarget condition saying why, an event, then the deletion.
func (p *Plugin) evict(ctx context.Context, preemptor, v *v1.Pod, node string) error {
	logger := klog.FromContext(ctx)
	msg := fmt.Sprintf("Strata GPU preemption for %s/%s", preemptor.Namespace, preemptor.Name)
	cond := &v1.PodCondition{Type: v1.DisruptionTarget, Status: v1.ConditionTrue, Reason: v1.PodReasonPreemptionByScheduler, Message: msg}
	newStatus := v.Status.DeepCopy()
	updated := false
	for i := range newStatus.Conditions {
		if newStatus.Conditions[i].Type == v1.DisruptionTarget {
			newStatus.Conditions[i], updated = *cond, true
		}
	}
	if !updated {
		newStatus.Conditions = append(newStatus.Conditions, *cond)
	}
	cp := v.DeepCopy()
	cp.Status = *newStatus
	if _, err := p.h.ClientSet().CoreV1().Pods(v.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
		logger.V(2).Info("Cannot mark GPU preemption victim", "pod", klog.KObj(v), "err", err)
	}
	if err := p.h.ClientSet().CoreV1().Pods(v.Namespace).Delete(ctx, v.Name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("preempt %s/%s: %w", v.Namespace, v.Name, err)
	}
	p.h.EventRecorder().Eventf(v, preemptor, v1.EventTypeNormal, "Preempted", "Preempting", "By %s/%s on node %s (GPU)", preemptor.Namespace, preemptor.Name, node)
	logger.Info("Preempted GPU pod", "victim", klog.KObj(v), "preemptor", klog.KObj(preemptor), "node", node)
	return nil
}

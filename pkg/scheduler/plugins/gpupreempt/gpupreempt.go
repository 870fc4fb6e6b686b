// Package gpupreempt is a PostFilter plugin that preempts lower-priority
// GPU pods for a GPU pod that cannot be placed. Upstream's DefaultPreemption
// cannot help there: DynamicResources has no PreFilterExtensions, so
// removing a victim in the preemption simulation frees none of its devices
// and every GPU preemption is "not helpful". This plugin runs after it and
// simulates on the GPU model instead: which lower-priority pods' GPU shares,
// once released, let the pod fit.
package gpupreempt

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/strata-dev/strata/pkg/gpushare"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpustate"
)

// Name is the plugin's name in scheduler profiles.
const Name = "StrataGPUPreemption"

// Plugin preempts best-effort GPU pods for higher-priority ones.
type Plugin struct {
	h fwk.Handle
}

var _ fwk.PostFilterPlugin = &Plugin{}

// New is the plugin factory.
func New(_ context.Context, _ runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	return &Plugin{h: h}, nil
}

// Name implements fwk.Plugin.
func (p *Plugin) Name() string { return Name }

// victim is a lower-priority pod and the milli-GPU it holds per GPU index.
type victim struct {
	pod  *v1.Pod
	held map[int]int64
}

// PostFilter implements fwk.PostFilterPlugin.
func (p *Plugin) PostFilter(ctx context.Context, _ fwk.CycleState, pod *v1.Pod, _ fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == v1.PreemptNever {
		return nil, fwk.NewStatus(fwk.Unschedulable, "pod never preempts")
	}
	mgr := p.h.SharedDRAManager()
	claims := gpustate.DRAClaims(mgr)
	task, hasGPU, err := gpustate.PodTask(pod, claims)
	if err != nil || !hasGPU {
		return nil, fwk.NewStatus(fwk.Unschedulable, "not a GPU pod")
	}
	nodes, err := p.h.SnapshotSharedLister().NodeInfos().List()
	if err != nil {
		return nil, fwk.AsStatus(err)
	}
	state, err := gpustate.DRASource{Manager: mgr}.Nodes(ctx, nodes)
	if err != nil {
		return nil, fwk.AsStatus(err)
	}
	prio := corev1helpers.PodPriority(pod)
	var bestNode string
	var best []victim
	for _, ni := range nodes {
		n, ok := state[ni.Node().Name]
		if !ok || len(n.GPUFree) == 0 {
			continue
		}
		var cands []victim
		for _, pi := range ni.GetPods() {
			vp := pi.GetPod()
			if corev1helpers.PodPriority(vp) >= prio || vp.DeletionTimestamp != nil {
				continue
			}
			if held := gpuHeld(vp, claims); len(held) > 0 {
				cands = append(cands, victim{pod: vp, held: held})
			}
		}
		if vs, ok := selectVictims(n, task, cands); ok && (bestNode == "" || len(vs) < len(best)) {
			bestNode, best = ni.Node().Name, vs
		}
	}
	if bestNode == "" {
		return nil, fwk.NewStatus(fwk.Unschedulable, "no lower-priority GPU pods whose GPUs would make room")
	}
	for _, v := range best {
		if err := p.evict(ctx, pod, v.pod, bestNode); err != nil {
			return nil, fwk.AsStatus(err)
		}
	}
	return &fwk.PostFilterResult{NominatingInfo: &fwk.NominatingInfo{NominatedNodeName: bestNode, NominatingMode: fwk.ModeOverride}},
		fwk.NewStatus(fwk.Success)
}

// selectVictims releases the lowest-priority (then newest) candidates'
// GPUs until the task fits, then gives back any victim the fit does not
// need. ok is false when even all candidates do not make room.
func selectVictims(n gpushare.Node, t gpushare.Task, cands []victim) ([]victim, bool) {
	sort.SliceStable(cands, func(i, j int) bool {
		pi, pj := corev1helpers.PodPriority(cands[i].pod), corev1helpers.PodPriority(cands[j].pod)
		if pi != pj {
			return pi < pj
		}
		return cands[i].pod.CreationTimestamp.After(cands[j].pod.CreationTimestamp.Time)
	})
	free := n.Clone()
	var chosen []victim
	for _, c := range cands {
		if gpushare.FitsGPU(free, t) {
			break
		}
		release(&free, c, 1)
		chosen = append(chosen, c)
	}
	if !gpushare.FitsGPU(free, t) {
		return nil, false
	}
	// Reprieve: most important first, keep a victim if the pod still fits.
	for i := len(chosen) - 1; i >= 0; i-- {
		release(&free, chosen[i], -1)
		if gpushare.FitsGPU(free, t) {
			chosen = append(chosen[:i], chosen[i+1:]...)
			continue
		}
		release(&free, chosen[i], 1)
	}
	return chosen, true
}

func release(n *gpushare.Node, v victim, sign int64) {
	for i, m := range v.held {
		if i < len(n.GPUFree) {
			n.GPUFree[i] += sign * m
		}
	}
}

// gpuHeld is the milli-GPU per GPU index that pod's allocated claims hold.
func gpuHeld(pod *v1.Pod, claims gpustate.ClaimGetter) map[int]int64 {
	held := map[int]int64{}
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
			if !ok {
				continue
			}
			m := int64(gpushare.MilliPerGPU)
			if q, ok := r.ConsumedCapacity[resourceapi.QualifiedName(gpustate.CapacityCompute)]; ok {
				m = q.Value()
			}
			held[idx] += m
		}
	}
	return held
}

// deviceIndex reads the GPU index from the driver's device name gpu-<i>.
func deviceIndex(r resourceapi.DeviceRequestAllocationResult) (int, bool) {
	if r.Driver != gpustate.DriverName {
		return 0, false
	}
	s, ok := strings.CutPrefix(r.Device, "gpu-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil
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

package main

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/dynamic-resource-allocation/resourceslice/tracker"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/dynamicresources"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/kubernetes/pkg/scheduler/metrics"
	"k8s.io/kubernetes/pkg/scheduler/util/assumecache"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/pkg/dra"
	"github.com/strata-dev/strata/pkg/gpu"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpubestfit"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpufit"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpufrag"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpustate"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/nodeorder"
)

// traceSlice is the ResourceSlice the node's DRA driver (pkg/dra) would
// publish for the trace node: one pool named after the node, one device per
// GPU built by dra.Device (compute 1000 with the consumable-capacity
// policy, memory, model attribute, multiple allocations allowed).
func traceSlice(n TraceNode) *resourceapi.ResourceSlice {
	var gpus []dra.GPU
	for i := range n.GPUs {
		gpus = append(gpus, dra.GPU{Index: i, UUID: fmt.Sprintf("GPU-sim-%s-%d", n.Name, i), Model: n.Model,
			MemoryBytes: 16 << 30, Backend: "simulated", Minor: -1})
	}
	res := dra.DriverResources(n.Name, gpus)
	return &resourceapi.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name + "-" + dra.DriverName},
		Spec: resourceapi.ResourceSliceSpec{
			Driver:   dra.DriverName,
			NodeName: ptr.To(n.Name),
			Pool:     resourceapi.ResourcePool{Name: n.Name, ResourceSliceCount: 1},
			Devices:  res.Pools[n.Name].Slices[0].Devices,
		},
	}
}

// ReplayDRA runs one seed of one policy with GPUs filtered, allocated and
// bound by the in-tree DynamicResources plugin (structured allocator with
// consumable capacity) on ResourceSlices as pkg/dra publishes them, and the
// policy's scoring plugins reading GPU state from the framework's
// SharedDRAManager (gpustate.DRASource): the product's path, with a fake
// clientset instead of an API server. PreBind writes each claim's
// allocation and reservation through the clientset, as the scheduler does.
// GPUs are chosen inside the node by the allocator (first fit), so this is
// comparable with sim mode using first fit (see compareDRA).
func ReplayDRA(ctx context.Context, rc ReplayConfig) (Result, error) {
	metrics.Register()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	logger := klog.FromContext(ctx)

	var gpuCap int64
	var nSlices int
	client := fake.NewClientset()
	versionObjects(client)
	var v1nodes []*v1.Node
	for _, n := range rc.Nodes {
		gpuCap += int64(n.GPUs) * gpu.MilliPerGPU
		v1nodes = append(v1nodes, makeNode(n))
		if n.GPUs == 0 {
			continue
		}
		if _, err := client.ResourceV1().ResourceSlices().Create(ctx, traceSlice(n), metav1.CreateOptions{}); err != nil {
			return Result{}, err
		}
		nSlices++
	}
	if _, err := client.ResourceV1().DeviceClasses().Create(ctx, dra.DeviceClass(), metav1.CreateOptions{}); err != nil {
		return Result{}, err
	}
	frag := rc.Fragmenter
	if frag == nil {
		frag = sharedFragmenter(rc.Pods)
	}
	work, rank := rc.arrivals(gpuCap)
	podsIn := make([]*v1.Pod, len(work))
	nClaims := 0
	for i, p := range work {
		pod, claim := makePod(i, p)
		if claim != nil {
			nClaims++
			if _, err := client.ResourceV1().ResourceClaims(namespace).Create(ctx, claim, metav1.CreateOptions{}); err != nil {
				return Result{}, err
			}
		}
		podsIn[i] = pod
	}

	inf := informers.NewSharedInformerFactory(client, 0)
	claimCache := assumecache.NewAssumeCache(logger, inf.Resource().V1().ResourceClaims().Informer(), "ResourceClaim", "", nil)
	slices, err := tracker.StartTracker(ctx, tracker.Options{
		EnableConsumableCapacity: true,
		SliceInformer:            inf.Resource().V1().ResourceSlices(),
		KubeClient:               client,
	})
	if err != nil {
		return Result{}, err
	}
	m := dynamicresources.NewDRAManager(ctx, claimCache, slices, inf)

	registry := plugins.NewInTreeRegistry()
	sources := gpustate.NewSources()
	src, err := sources.For(m, inf.Resource().V1().ResourceClaims().Informer())
	if err != nil {
		return Result{}, err
	}
	claims := gpustate.DRAClaims(m)
	if err := registry.Register(gpufrag.Name, gpufrag.Factory(fragOptions(rc, src, claims, frag))); err != nil {
		return Result{}, err
	}
	if err := registry.Register(nodeorder.Name, nodeorder.New); err != nil {
		return Result{}, err
	}
	if err := registry.Register(gpubestfit.Name, gpubestfit.Factory(src, claims)); err != nil {
		return Result{}, err
	}
	prof, err := profile(rc.Policy, dynamicresources.Name)
	if err != nil {
		return Result{}, err
	}
	prof.Plugins.PreBind = config.PluginSet{Enabled: []config.Plugin{{Name: dynamicresources.Name}}}
	// StrataGPUFit's Reserve marks the claims in flight in the shared GPU
	// state, as in the product's profile, with or without its filter.
	if err := registry.Register(gpufit.Name, gpufit.New(sources)); err != nil {
		return Result{}, err
	}
	prof.Plugins.Reserve.Enabled = append(prof.Plugins.Reserve.Enabled, config.Plugin{Name: gpufit.Name})
	if !rc.NoGPUFit {
		// As in the product's profile: the cheap GPU check right before
		// the allocator.
		filters := config.PluginSet{Enabled: []config.Plugin{{Name: "NodeResourcesFit"}, {Name: gpufit.Name}, {Name: dynamicresources.Name}}}
		prof.Plugins.PreFilter, prof.Plugins.Filter = filters, filters
	}
	snapshot := cache.NewSnapshot(nil, v1nodes)
	fw, err := frameworkruntime.NewFramework(ctx, registry, prof,
		frameworkruntime.WithSnapshotSharedLister(snapshot),
		frameworkruntime.WithClientSet(client),
		frameworkruntime.WithInformerFactory(inf),
		frameworkruntime.WithSharedDRAManager(m),
		frameworkruntime.WithParallelism(runtime.GOMAXPROCS(0)))
	if err != nil {
		return Result{}, fmt.Errorf("framework: %w", err)
	}
	inf.Start(ctx.Done())
	for typ, ok := range inf.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return Result{}, fmt.Errorf("informer %v did not sync", typ)
		}
	}
	// The slice tracker fills its own cache asynchronously after the
	// informers sync; on a loaded machine the first pods could otherwise
	// see no devices.
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		l, err := slices.ListPatchedResourceSlices()
		return err == nil && len(l) == nSlices && slices.HasSynced(), nil
	}); err != nil {
		return Result{}, fmt.Errorf("slice tracker has not seen the %d ResourceSlices: %w", nSlices, err)
	}
	// Likewise the claim cache, fed by its informer's event handler after
	// the informer itself has synced.
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return len(claimCache.List(nil)) == nClaims, nil
	}); err != nil {
		return Result{}, fmt.Errorf("claim cache has not seen the %d ResourceClaims: %w", nClaims, err)
	}
	after := func(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, node string) (string, error) {
		if st := fw.RunPreBindPlugins(ctx, cs, pod, node); !st.IsSuccess() {
			return "", fmt.Errorf("prebind %s on %s: %w", pod.Name, node, st.AsError())
		}
		if len(pod.Spec.ResourceClaims) == 0 {
			return "", nil
		}
		c, err := claims(namespace, *pod.Spec.ResourceClaims[0].ResourceClaimName)
		if err != nil {
			return "", err
		}
		if c.Status.Allocation == nil {
			return "", fmt.Errorf("claim %s not allocated after PreBind", c.Name)
		}
		var devs []string
		for _, r := range c.Status.Allocation.Devices.Results {
			devs = append(devs, strings.TrimPrefix(r.Device, "gpu-"))
		}
		return strings.Join(devs, ","), nil
	}
	return runInOrder(rc.Order, work, podsIn, func(work []TracePod, pods []*v1.Pod) (Result, error) {
		return run(ctx, fw, snapshot, work, pods, gpuCap, rc.Seed, rank, after)
	})
}

// versionObjects makes the fake clientset give every created or updated
// object a new, increasing resourceVersion, as the API server does; the
// scheduler's assume cache orders claim versions by it.
func versionObjects(client *fake.Clientset) {
	var rv atomic.Int64
	client.PrependReactor("*", "*", func(a k8stesting.Action) (bool, kruntime.Object, error) {
		var obj kruntime.Object
		switch a := a.(type) {
		case k8stesting.CreateAction:
			obj = a.GetObject()
		case k8stesting.UpdateAction:
			obj = a.GetObject()
		}
		if m, err := meta.Accessor(obj); obj != nil && err == nil {
			m.SetResourceVersion(strconv.FormatInt(rv.Add(1), 10))
		}
		return false, nil, nil
	})
}

// compareDRA runs every policy and seed twice on the same input: sim mode
// (StrataGPUSim, GPU inside the node by first fit, which is what the
// structured allocator does) and dra mode (DynamicResources), and prints
// whether the allocation ratios and the per-pod node choices are equal.
// It reports false if any differ or a run fails.
func compareDRA(ctx context.Context, nodes []TraceNode, pods []TracePod, seeds []int64, policies []Policy, tune float64, tieBreak string, maxPods int, noGPUFit bool) bool {
	ok := true
	for _, p := range policies {
		first := p
		first.Picker = "first"
		for _, seed := range seeds {
			rc := ReplayConfig{Nodes: nodes, Pods: pods, Seed: seed, Tune: tune, Policy: first, Mode: "sim", TieBreak: tieBreak, MaxPods: maxPods, NoGPUFit: noGPUFit}
			sim, d, err := simAndDRA(ctx, rc)
			if err != nil {
				fmt.Printf("%s seed %d: %v\n", p.Name, seed, err)
				ok = false
				continue
			}
			diff, firstDiff := 0, -1
			for i := range sim.Placements {
				if node, _, _ := strings.Cut(d.Placements[i], ":"); node != sim.Placements[i] {
					diff++
					if firstDiff < 0 {
						firstDiff = i
					}
				}
			}
			same := diff == 0 && sim.AllocAtEnd == d.AllocAtEnd && sim.Scheduled == d.Scheduled
			verdict := "EQUAL"
			if !same {
				verdict = fmt.Sprintf("DIFFERENT (%d pods on other nodes, first at arrival %d)", diff, firstDiff)
				ok = false
			}
			fmt.Printf("%-10s seed %d, %d nodes, %d pods: sim %.2f%% (%d scheduled, %.0f pods/s) | DynamicResources %.2f%% (%d scheduled, %.0f pods/s): %s\n",
				p.Name, seed, len(nodes), d.Pods, sim.AllocAtEnd, sim.Scheduled, sim.PodsPerSec, d.AllocAtEnd, d.Scheduled, d.PodsPerSec, verdict)
		}
	}
	return ok
}

// simAndDRA replays rc in sim mode and in dra mode (rc.Mode is ignored).
func simAndDRA(ctx context.Context, rc ReplayConfig) (sim, d Result, err error) {
	rc.Mode = "sim"
	if sim, err = Replay(ctx, rc); err != nil {
		return sim, d, fmt.Errorf("sim: %w", err)
	}
	rc.Mode = "dra"
	if d, err = ReplayDRA(ctx, rc); err != nil {
		return sim, d, fmt.Errorf("dra: %w", err)
	}
	return sim, d, nil
}

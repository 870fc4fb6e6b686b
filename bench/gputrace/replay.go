package main

import (
	"context"
	"fmt"
	mrand "math/rand"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/latest"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/kubernetes/pkg/scheduler/metrics"

	"github.com/strata-dev/strata/bench/gputrace/gpusim"
	"github.com/strata-dev/strata/pkg/gpu"
	"github.com/strata-dev/strata/pkg/gpushare"
	"github.com/strata-dev/strata/pkg/scheduler"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpubestfit"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpufrag"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpustate"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/nodeorder"
)

// Policy is a scheduler profile to compare.
type Policy struct {
	Name   string
	Doc    string
	Score  []config.Plugin
	Picker string // GPU choice within the node: fgd, bestfit, first
	// TieBreak is StrataGPUFrag's tieBreak argument ("" = its default);
	// "none" leaves ties to host selection (see ReplayConfig.TieBreak).
	TieBreak string
	// Window: StrataGPUFrag learns the distribution from a sliding window
	// of the pods it scores, with the product's arguments
	// (gpufrag.DefaultArgs, which Strata's profile states), instead of the
	// trace's fixed distribution.
	Window    bool
	Published float64 // the paper's figure at 130%, 0 if none
}

var policyList = []Policy{
	{Name: "fgd", Doc: "Strata default: StrataGPUFrag (tieBreak cpuPodsByIdleGPU), GPU within the node chosen by FGD (the paper)",
		Score: []config.Plugin{{Name: gpufrag.Name, Weight: 1}}, Picker: "fgd", Published: 95.39},
	{Name: "fgd-hash", Doc: "StrataGPUFrag with tieBreak nodeOrder (the hashed node order for every pod, the default before cpuPodsByIdleGPU), GPU by FGD",
		Score: []config.Plugin{{Name: gpufrag.Name, Weight: 1}}, Picker: "fgd", TieBreak: gpufrag.TieBreakNodeOrder},
	{Name: "fgd-notie", Doc: "StrataGPUFrag without its own tie-break (tieBreak: none): ties left to host selection",
		Score: []config.Plugin{{Name: gpufrag.Name, Weight: 1}}, Picker: "fgd", TieBreak: gpufrag.TieBreakNone},
	{Name: "fgd-first", Doc: "StrataGPUFrag for the node, GPU within it = first fit (what DRA's allocator does in the product)",
		Score: []config.Plugin{{Name: gpufrag.Name, Weight: 1}}, Picker: "first"},
	{Name: "bestfit", Doc: "the paper's best-fit baseline: StrataGPUBestFit, tightest GPU within the node",
		Score: []config.Plugin{{Name: gpubestfit.Name, Weight: 1}}, Picker: "bestfit", Published: 93.08},
	{Name: "default", Doc: "upstream default scoring (NodeResourcesFit LeastAllocated + BalancedAllocation), GPU by first fit",
		Score: []config.Plugin{{Name: "NodeResourcesFit", Weight: 1}, {Name: "NodeResourcesBalancedAllocation", Weight: 1}}, Picker: "first"},
	{Name: "product", Doc: "the profile strata server runs (pkg/scheduler.Config): StrataGPUFrag at scheduler.FragWeight (window distribution, default tie-break) beside the default scorers, totals' ties broken by StrataNodeOrder, GPU first fit",
		Score:  productScore,
		Picker: "first", Window: true},
}

// productScore is the score set of the profile pkg/scheduler.Config gives
// kube-scheduler, with its weights, less the default scorers that give
// every node of the replay the same score (TaintToleration: no taints;
// NodeAffinity, PodTopologySpread, InterPodAffinity: the pods ask none;
// ImageLocality: no node has images; VolumeBinding: no volumes;
// DynamicResources: scores only firstAvailable sub-requests), which change
// neither the best node nor the ties.
var productScore = func() []config.Plugin {
	keep := map[string]bool{"NodeResourcesFit": true, "NodeResourcesBalancedAllocation": true, gpufrag.Name: true, nodeorder.Name: true}
	var out []config.Plugin
	for _, p := range scheduler.ScorePlugins() {
		if keep[p.Name] {
			out = append(out, config.Plugin{Name: p.Name, Weight: p.Weight})
		}
	}
	return out
}()

// fragOptions is StrataGPUFrag's wiring for a run: the trace's fixed
// distribution, or (Policy.Window) a new window with the product's
// arguments.
func fragOptions(rc ReplayConfig, src gpustate.Source, claims gpustate.ClaimGetter, frag *gpushare.Fragmenter) gpufrag.Options {
	o := gpufrag.Options{Source: src, Claims: claims, Fragmenter: frag, TieBreak: rc.Policy.TieBreak}
	if rc.Policy.Window {
		o.Fragmenter, o.Window = nil, gpufrag.DefaultArgs().Window()
	}
	return o
}

func policyNames() []string {
	var out []string
	for _, p := range policyList {
		out = append(out, p.Name)
	}
	return out
}

func policyByName(n string) (Policy, bool) {
	for _, p := range policyList {
		if p.Name == n {
			return p, true
		}
	}
	return Policy{}, false
}

// ReplayConfig is one run.
type ReplayConfig struct {
	Nodes  []TraceNode
	Pods   []TracePod
	Seed   int64
	Tune   float64
	Policy Policy
	Mode   string
	// TieBreak picks the host among the nodes with the highest score:
	// "order" (the paper's simulator: the lowest rank in a random node order
	// fixed for the run, see Workload) or "random" (upstream kube-scheduler:
	// uniformly at random, per pod). With FGD many nodes tie (the score is an
	// integer and placing a CPU-only pod, or a share on an idle GPU, often
	// changes no fragment), so this decides whether such pods are packed onto
	// the same nodes (fixed order) or spread over all of them (random, which
	// exhausts CPU on GPU-dense nodes and strands their GPUs).
	TieBreak string
	// MaxPods, if positive, cuts the arrival sequence after that many pods
	// (reduced replays).
	MaxPods int
	// NoGPUFit leaves StrataGPUFit out of the dra mode's profile, so that
	// DynamicResources' allocator filters every node (the product runs the
	// cheap check first).
	NoGPUFit bool
	// Fragmenter is shared between runs (same distribution, shared memo).
	Fragmenter *gpushare.Fragmenter
	// Order, if set, is the order the pods reach the scheduler: the k-th
	// is arrival Order[k] (after MaxPods). The server replay sets it to the
	// order the API server committed the pods in, so that the in-process
	// references see the same queue. Results stay indexed by arrival.
	Order []int
}

// Result of one run.
type Result struct {
	Pods, Scheduled        int
	AllocAt100, AllocAtEnd float64 // % of GPU capacity
	PodsPerSec             float64
	Placements             []string // node:gpus per pod in arrival order ("" = unscheduled)
	// Ties per pod in arrival order: how many nodes shared the highest
	// total score (1: a unique best node; 0: unscheduled).
	Ties []int
}

// arrivals is the run's arrival sequence, cut after MaxPods, and the node
// rank for the paper's host selection (nil with TieBreak "random").
func (rc ReplayConfig) arrivals(gpuCap int64) ([]TracePod, map[string]int) {
	work, rank := Workload(rc.Pods, rc.Nodes, gpuCap, rc.Tune, rc.Seed)
	if rc.TieBreak == "random" {
		rank = nil
	}
	if rc.MaxPods > 0 && len(work) > rc.MaxPods {
		work = work[:rc.MaxPods]
	}
	return work, rank
}

// runInOrder runs the pods in order (nil: as they arrive) and indexes the
// result's per-pod fields by arrival again.
func runInOrder(order []int, work []TracePod, pods []*v1.Pod, run func([]TracePod, []*v1.Pod) (Result, error)) (Result, error) {
	if order == nil {
		return run(work, pods)
	}
	if len(order) != len(work) {
		return Result{}, fmt.Errorf("order has %d pods, the arrival sequence %d", len(order), len(work))
	}
	w, p := make([]TracePod, len(work)), make([]*v1.Pod, len(pods))
	for k, i := range order {
		w[k], p[k] = work[i], pods[i]
	}
	res, err := run(w, p)
	placements, ties := make([]string, len(order)), make([]int, len(order))
	for k, i := range order {
		if k < len(res.Placements) {
			placements[i] = res.Placements[k]
		}
		if k < len(res.Ties) {
			ties[i] = res.Ties[k]
		}
	}
	res.Placements, res.Ties = placements, ties
	return res, err
}

// Workload builds the arrival sequence and the host tie-break order of the
// paper's simulator (hkust-adsl/kubernetes-scheduler-simulator, Simulate,
// SortClusterPods, tuneUpPods/tuneDownPods, syncClusterResourceList) from
// one Go math/rand (v1) stream seeded with the seed, in the same order of
// draws: one Int (a debug log's argument), the trace pods sorted by name and
// shuffled, then copies of pods drawn uniformly from the name-sorted trace
// and appended (not shuffled) until the GPU demand would pass tune x
// capacity (the stop test compares the drawn pod's per-GPU request, as the
// simulator does), or random pods removed while above it; last a
// permutation of the name-sorted nodes. The simulator prefixes each node
// name with its index in that permutation ("%04d-") and its patched
// selectHost keeps the smallest name among equal scores, so rank[node] is
// that index and the lowest rank wins a tie.
//
// The simulator's informers run concurrently and may draw from the same
// global source before the permutation, so its node order is the same
// procedure but not necessarily the same permutation for a seed.
func Workload(pods []TracePod, nodes []TraceNode, gpuCap int64, tune float64, seed int64) (work []TracePod, rank map[string]int) {
	r := mrand.New(mrand.NewSource(seed))
	_ = r.Int()
	sorted := append([]TracePod(nil), pods...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	work = append([]TracePod(nil), sorted...)
	r.Shuffle(len(work), func(i, j int) { work[i], work[j] = work[j], work[i] })
	var total int64
	for _, p := range work {
		total += p.Task.GPUTotal()
	}
	target := tune * float64(gpuCap)
	if float64(total) > target {
		for float64(total) > target && len(work) > 0 {
			i := r.Intn(len(work))
			total -= work[i].Task.GPUTotal()
			work = append(work[:i], work[i+1:]...)
		}
	} else if float64(total) < target && len(sorted) > 0 {
		for i := 0; ; i++ {
			p := sorted[r.Intn(len(sorted))]
			if float64(total+p.Task.GPUMilli) > target {
				break
			}
			p.Name += "-tuned-" + strconv.Itoa(i)
			total += p.Task.GPUTotal()
			work = append(work, p)
		}
	}
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	sort.Strings(names)
	perm := r.Perm(len(names))
	rank = make(map[string]int, len(names))
	for i, n := range names {
		rank[n] = perm[i]
	}
	return work, rank
}

const namespace = "replay"

func makeNode(n TraceNode) *v1.Node {
	rl := v1.ResourceList{
		v1.ResourceCPU:    *resource.NewMilliQuantity(n.CPU, resource.DecimalSI),
		v1.ResourceMemory: *resource.NewQuantity(n.MemMiB<<20, resource.BinarySI),
		v1.ResourcePods:   *resource.NewQuantity(100000, resource.DecimalSI),
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: types.UID("node-" + n.Name), Labels: map[string]string{"kubernetes.io/hostname": n.Name}},
		Status:     v1.NodeStatus{Capacity: rl, Allocatable: rl, Phase: v1.NodeRunning},
	}
}

// makePod expresses a trace task the way the product does: CPU and memory
// as container requests, GPUs as a ResourceClaim of class gpu.strata.dev.
func makePod(i int, p TracePod) (*v1.Pod, *resourceapi.ResourceClaim) {
	name := fmt.Sprintf("p%05d-%s", i, p.Name)
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: types.UID(name)},
		Spec: v1.PodSpec{
			SchedulerName: v1.DefaultSchedulerName,
			Containers: []v1.Container{{Name: "main", Image: "pause", Resources: v1.ResourceRequirements{Requests: v1.ResourceList{
				v1.ResourceCPU:    *resource.NewMilliQuantity(p.Task.CPU, resource.DecimalSI),
				v1.ResourceMemory: *resource.NewQuantity(p.Task.Mem<<20, resource.BinarySI),
			}}}},
		},
	}
	if p.Task.NumGPU == 0 {
		return pod, nil
	}
	claimName := name + "-gpu"
	req := resourceapi.DeviceRequest{Name: "gpu", Exactly: &resourceapi.ExactDeviceRequest{
		DeviceClassName: gpu.DriverName,
		AllocationMode:  resourceapi.DeviceAllocationModeExactCount,
		Count:           int64(p.Task.NumGPU),
	}}
	if p.Task.IsShare() || p.Task.GPUMem > 0 {
		// GPUMem is in bytes (the trace has none; tests set it).
		capacity := map[resourceapi.QualifiedName]resource.Quantity{}
		if p.Task.IsShare() {
			capacity[gpu.CapacityCompute] = *resource.NewQuantity(p.Task.GPUMilli, resource.DecimalSI)
		}
		if p.Task.GPUMem > 0 {
			capacity[gpu.CapacityMemory] = *resource.NewQuantity(p.Task.GPUMem, resource.BinarySI)
		}
		req.Exactly.Capacity = &resourceapi.CapacityRequirements{Requests: capacity}
	}
	if p.Task.Models != "" {
		req.Exactly.Selectors = []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{Expression: gpu.ModelSelector(splitModels(p.Task.Models))}}}
	}
	claim := &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: claimName, Namespace: namespace, UID: types.UID(claimName)},
		Spec:       resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{req}}},
	}
	if p.Task.NumGPU > 1 {
		uuid := gpu.Qualified(gpu.AttrUUID)
		claim.Spec.Devices.Constraints = []resourceapi.DeviceConstraint{{Requests: []string{"gpu"}, DistinctAttribute: &uuid}}
	}
	pod.Spec.ResourceClaims = []v1.PodResourceClaim{{Name: "gpu", ResourceClaimName: &claimName}}
	pod.Spec.Containers[0].Resources.Claims = []v1.ResourceClaim{{Name: "gpu"}}
	return pod, claim
}

func splitModels(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '|' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

func picker(name string, f *gpushare.Fragmenter) gpushare.Picker {
	switch name {
	case "fgd":
		return f.PickFGD
	case "bestfit":
		return gpushare.PickBestFit
	default:
		return gpushare.PickFirst
	}
}

// profile returns kube-scheduler's default profile with the plugin set of
// the policy: NodeResourcesFit filters CPU and memory, the GPU plugin
// (StrataGPUSim, or DynamicResources in dra mode) filters and reserves
// GPUs, the policy's plugins score. percentageOfNodesToScore is 100 as in
// the paper.
func profile(p Policy, gpuPlugin string) (*config.KubeSchedulerProfile, error) {
	cfg, err := latest.Default()
	if err != nil {
		return nil, err
	}
	prof := cfg.Profiles[0]
	set := func(names ...string) config.PluginSet {
		var ps config.PluginSet
		for _, n := range names {
			ps.Enabled = append(ps.Enabled, config.Plugin{Name: n})
		}
		return ps
	}
	pct := int32(100)
	prof.PercentageOfNodesToScore = &pct
	prof.Plugins = &config.Plugins{
		QueueSort: set("PrioritySort"),
		PreFilter: set("NodeResourcesFit", gpuPlugin),
		Filter:    set("NodeResourcesFit", gpuPlugin),
		PreScore:  set(),
		Score:     config.PluginSet{Enabled: p.Score},
		Reserve:   set(gpuPlugin),
		Bind:      set("DefaultBinder"),
	}
	for _, s := range p.Score {
		if s.Name != nodeorder.Name { // scores in NormalizeScore alone
			prof.Plugins.PreScore.Enabled = append(prof.Plugins.PreScore.Enabled, config.Plugin{Name: s.Name})
		}
	}
	return &prof, nil
}

// Replay runs one seed of one policy.
func Replay(ctx context.Context, rc ReplayConfig) (Result, error) {
	metrics.Register()
	var gpuCap int64
	store := gpustate.NewStore()
	var v1nodes []*v1.Node
	for _, n := range rc.Nodes {
		gpuCap += int64(n.GPUs) * gpu.MilliPerGPU
		store.AddNode(n.Name, n.Model, n.GPUs)
		v1nodes = append(v1nodes, makeNode(n))
	}
	frag := rc.Fragmenter
	if frag == nil {
		frag = sharedFragmenter(rc.Pods)
	}
	work, rank := rc.arrivals(gpuCap)

	registry := plugins.NewInTreeRegistry()
	if err := registry.Register(gpufrag.Name, gpufrag.Factory(fragOptions(rc, store, store.Claims, frag))); err != nil {
		return Result{}, err
	}
	if err := registry.Register(nodeorder.Name, nodeorder.New); err != nil {
		return Result{}, err
	}
	if err := registry.Register(gpubestfit.Name, gpubestfit.Factory(store, store.Claims)); err != nil {
		return Result{}, err
	}
	if err := registry.Register(gpusim.Name, gpusim.Factory(store, picker(rc.Policy.Picker, frag), nil)); err != nil {
		return Result{}, err
	}
	prof, err := profile(rc.Policy, gpusim.Name)
	if err != nil {
		return Result{}, err
	}
	snapshot := cache.NewSnapshot(nil, v1nodes)
	client := fake.NewClientset()
	fw, err := frameworkruntime.NewFramework(ctx, registry, prof,
		frameworkruntime.WithSnapshotSharedLister(snapshot),
		frameworkruntime.WithClientSet(client),
		frameworkruntime.WithInformerFactory(informers.NewSharedInformerFactory(client, 0)),
		frameworkruntime.WithParallelism(runtime.GOMAXPROCS(0)))
	if err != nil {
		return Result{}, fmt.Errorf("framework: %w", err)
	}
	podsIn := make([]*v1.Pod, len(work))
	for i, p := range work {
		pod, claim := makePod(i, p)
		if claim != nil {
			store.AddClaim(claim)
		}
		podsIn[i] = pod
	}
	return runInOrder(rc.Order, work, podsIn, func(work []TracePod, pods []*v1.Pod) (Result, error) {
		return run(ctx, fw, snapshot, work, pods, gpuCap, rc.Seed, rank, nil)
	})
}

var fragCache = map[string]*gpushare.Fragmenter{}

// sharedFragmenter is the paper's task distribution: the trace's pods
// (CPU-only pods included) by type, the most popular covering 95%.
func sharedFragmenter(pods []TracePod) *gpushare.Fragmenter {
	key := fmt.Sprintf("%p/%d", &pods[0], len(pods))
	if f, ok := fragCache[key]; ok {
		return f
	}
	tasks := make([]gpushare.Task, len(pods))
	for i, p := range pods {
		tasks[i] = p.Task
	}
	f := gpushare.NewFragmenter(gpushare.TypicalDist(tasks, 0.95))
	fragCache[key] = f
	return f
}

// afterPlace lets dra mode commit claim allocations after Reserve.
type afterPlace func(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, node string) (string, error)

// run schedules the pods one at a time with the framework: PreFilter,
// Filter on every node, PreScore, Score, host selection (highest total
// score, ties broken uniformly at random as kube-scheduler's selectHost
// does, but with a seeded generator), Reserve, then the pod is added to
// the snapshot's NodeInfo. Nothing departs.
func run(ctx context.Context, fw framework.Framework, snapshot *cache.Snapshot, work []TracePod, pods []*v1.Pod, gpuCap int64, seed int64, rank map[string]int, after afterPlace) (Result, error) {
	all, err := snapshot.NodeInfos().List()
	if err != nil {
		return Result{}, err
	}
	// The snapshot lists nodes in map order; a fixed order makes the random
	// tie-break (reservoir sampling over this order) reproducible.
	all = slices.Clone(all)
	slices.SortFunc(all, func(a, b fwk.NodeInfo) int { return strings.Compare(a.Node().Name, b.Node().Name) })
	tie := rand.New(rand.NewPCG(uint64(seed), 0x7153))
	res := Result{Pods: len(work), Placements: make([]string, len(work)), Ties: make([]int, len(work))}
	var allocated, arrived int64
	at100 := false
	feasible := make([]bool, len(all))
	start := time.Now()
	for i, pod := range pods {
		task := work[i].Task
		arrived += task.GPUTotal()
		host, cs, ties, err := scheduleOne(ctx, fw, all, feasible, pod, tie, rank)
		if err != nil {
			return res, err
		}
		res.Ties[i] = ties
		if host != "" {
			if st := fw.RunReservePluginsReserve(ctx, cs, pod, host); !st.IsSuccess() {
				fw.RunReservePluginsUnreserve(ctx, cs, pod, host)
				if st.Code() == fwk.Error {
					return res, fmt.Errorf("reserve %s on %s: %w", pod.Name, host, st.AsError())
				}
				host = ""
			}
		}
		if host != "" {
			ni, err := snapshot.NodeInfos().Get(host)
			if err != nil {
				return res, err
			}
			p := pod.DeepCopy()
			p.Spec.NodeName = host
			ni.(*framework.NodeInfo).AddPod(p)
			allocated += task.GPUTotal()
			res.Scheduled++
			res.Placements[i] = host
			if after != nil {
				if g, err := after(ctx, cs, pod, host); err != nil {
					return res, err
				} else {
					res.Placements[i] += ":" + g
				}
			}
		}
		if !at100 && float64(arrived) >= float64(gpuCap) {
			at100 = true
			res.AllocAt100 = 100 * float64(allocated) / float64(gpuCap)
		}
	}
	el := time.Since(start)
	res.AllocAtEnd = 100 * float64(allocated) / float64(gpuCap)
	if !at100 {
		res.AllocAt100 = res.AllocAtEnd
	}
	res.PodsPerSec = float64(len(pods)) / el.Seconds()
	return res, nil
}

// scheduleOne runs one scheduling cycle up to host selection: the highest
// total score; among equal scores the lowest rank if rank is set, else one
// uniformly at random.
func scheduleOne(ctx context.Context, fw framework.Framework, all []fwk.NodeInfo, feasible []bool, pod *v1.Pod, tie *rand.Rand, rank map[string]int) (host string, cs fwk.CycleState, ties int, err error) {
	cs = framework.NewCycleState()
	_, st, _ := fw.RunPreFilterPlugins(ctx, cs, pod)
	if !st.IsSuccess() {
		if st.Code() == fwk.Error {
			return "", cs, 0, fmt.Errorf("prefilter %s: %w", pod.Name, st.AsError())
		}
		return "", cs, 0, nil
	}
	var errs atomic.Pointer[fwk.Status]
	fw.Parallelizer().Until(ctx, len(all), func(i int) {
		s := fw.RunFilterPlugins(ctx, cs, pod, all[i])
		feasible[i] = s.IsSuccess()
		if s.Code() == fwk.Error {
			errs.Store(s)
		}
	}, "filter")
	if s := errs.Load(); s != nil {
		return "", cs, 0, fmt.Errorf("filter %s: %w", pod.Name, s.AsError())
	}
	var nodes []fwk.NodeInfo
	for i, ok := range feasible {
		if ok {
			nodes = append(nodes, all[i])
		}
	}
	if len(nodes) == 0 {
		return "", cs, 0, nil
	}
	if len(nodes) == 1 {
		return nodes[0].Node().Name, cs, 1, nil
	}
	if st := fw.RunPreScorePlugins(ctx, cs, pod, nodes); !st.IsSuccess() {
		return "", cs, 0, fmt.Errorf("prescore %s: %w", pod.Name, st.AsError())
	}
	scores, st := fw.RunScorePlugins(ctx, cs, pod, nodes)
	if !st.IsSuccess() {
		return "", cs, 0, fmt.Errorf("score %s: %w", pod.Name, st.AsError())
	}
	top := scores[0].TotalScore
	for _, s := range scores {
		top = max(top, s.TotalScore)
	}
	for _, s := range scores {
		if s.TotalScore == top {
			ties++
		}
	}
	return pickHost(scores, rank, tie), cs, ties, nil
}

// pickHost returns the node with the highest total score; among equal
// scores the lowest rank if rank is set (the paper's simulator), else one
// uniformly at random by reservoir sampling (upstream selectHost).
func pickHost(scores []fwk.NodePluginScores, rank map[string]int, tie *rand.Rand) string {
	best, n := -1, 0
	for i, s := range scores {
		switch {
		case best < 0 || s.TotalScore > scores[best].TotalScore:
			best, n = i, 1
		case s.TotalScore == scores[best].TotalScore:
			n++
			if rank != nil {
				if rank[s.Name] < rank[scores[best].Name] {
					best = i
				}
			} else if tie.IntN(n) == 0 {
				best = i
			}
		}
	}
	return scores[best].Name
}

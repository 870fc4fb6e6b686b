// A run's configuration and result, shared by every mode, and the
// in-process replay (--mode sim): the loop that schedules the pods one at a
// time with kube-scheduler's framework runtime.

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/kubernetes/pkg/scheduler/metrics"

	"github.com/strata-dev/strata/bench/gputrace/internal/gpusim"
	"github.com/strata-dev/strata/pkg/gpu"
	"github.com/strata-dev/strata/pkg/gpushare"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpubestfit"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpufrag"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpustate"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/nodeorder"
)

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

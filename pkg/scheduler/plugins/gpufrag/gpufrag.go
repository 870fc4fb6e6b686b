// Package gpufrag is the StrataGPUFrag score plugin: Fragmentation Gradient
// Descent (FGD, USENIX ATC'23). It prefers the node whose expected GPU
// fragmentation, over the distribution of recent GPU requests, grows least
// (or shrinks most) when the pod lands there. See ../README.md.
package gpufrag

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fwk "k8s.io/kube-scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/strata-dev/strata/pkg/gpushare"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpustate"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/nodeorder"
)

// Name is the plugin name in the scheduler profile.
const Name = "StrataGPUFrag"

// Values of Args.TieBreak.
const (
	TieBreakCPUPodsByIdleGPU = "cpuPodsByIdleGPU"
	TieBreakNodeOrder        = "nodeOrder"
	TieBreakNone             = "none"
)

// TieBreaks lists the accepted values of Args.TieBreak, the default first.
var TieBreaks = []string{TieBreakCPUPodsByIdleGPU, TieBreakNodeOrder, TieBreakNone}

// Args configure the plugin (pluginConfig args, all optional; DefaultArgs
// has the defaults).
type Args struct {
	// WindowSize is how many recent pods define the workload distribution.
	WindowSize int `json:"windowSize,omitempty"`
	// PriorWeight is how many observations the built-in prior is worth.
	PriorWeight float64 `json:"priorWeight,omitempty"`
	// TieBreak is how the plugin separates nodes with the same FGD score:
	// "cpuPodsByIdleGPU" (default) is "nodeOrder" except that a pod asking
	// no GPU first prefers the node with the least idle GPU capacity;
	// "nodeOrder" prefers the first in a fixed pseudo-random node order (a
	// hash of the name, see nodeorder.Less), as the paper's simulator does;
	// "none" leaves ties to the other score plugins and then host
	// selection (in Strata's profile StrataNodeOrder; upstream alone, the
	// order of its score heap).
	TieBreak string `json:"tieBreak,omitempty"`
}

// DefaultArgs are the arguments the plugin runs with where pluginConfig
// leaves them out. They are the only place the defaults are written:
// Strata's scheduler profile (pkg/scheduler) states them from here, and the
// replay's product policy (bench/gputrace) runs with them.
func DefaultArgs() Args {
	return Args{WindowSize: 1000, PriorWeight: 100, TieBreak: TieBreakCPUPodsByIdleGPU}
}

// GetObjectKind implements runtime.Object, so that a typed
// KubeSchedulerConfiguration can carry Args as pluginConfig args.
// kube-scheduler passes an out-of-tree plugin's args to it undecoded, so
// they need no kind of their own.
func (*Args) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object; Args holds only values.
func (a *Args) DeepCopyObject() runtime.Object {
	c := *a
	return &c
}

// Window is a new sliding window with the arguments' size and prior
// weight over the built-in prior.
func (a Args) Window() *gpushare.Window {
	return gpushare.NewWindow(a.WindowSize, gpushare.DefaultPrior(), a.PriorWeight)
}

// Options wire the plugin to a GPU state other than DRA's (the replay).
type Options struct {
	Source gpustate.Source
	Claims gpustate.ClaimGetter
	// Fragmenter, if set, fixes the distribution (the paper's replay uses the
	// trace's task distribution); otherwise a sliding window learns it.
	Fragmenter *gpushare.Fragmenter
	Window     *gpushare.Window
	// TieBreak is Args.TieBreak; "" is the default (cpuPodsByIdleGPU).
	TieBreak string
}

// Plugin scores nodes by FGD.
type Plugin struct {
	opts Options
}

var (
	_ fwk.PreScorePlugin  = &Plugin{}
	_ fwk.ScorePlugin     = &Plugin{}
	_ fwk.ScoreExtensions = &Plugin{}
)

// New is the product constructor, for app.WithPlugin(gpufrag.Name, gpufrag.New(sources)):
// GPU state and claims come from the framework's SharedDRAManager, the
// distribution from a sliding window of the pods it scores.
func New(sources *gpustate.Sources) frameworkruntime.PluginFactory {
	return func(_ context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
		args, err := decodeArgs(obj)
		if err != nil {
			return nil, err
		}
		m, src, err := sources.Handle(h, Name)
		if err != nil {
			return nil, err
		}
		return NewWithOptions(Options{
			Source:   src,
			Claims:   gpustate.DRAClaims(m),
			Window:   args.Window(),
			TieBreak: args.TieBreak,
		}), nil
	}
}

// decodeArgs decodes the arguments over DefaultArgs and checks them.
func decodeArgs(obj runtime.Object) (Args, error) {
	args := DefaultArgs()
	if obj != nil {
		if err := frameworkruntime.DecodeInto(obj, &args); err != nil {
			return args, fmt.Errorf("%s args: %w", Name, err)
		}
	}
	switch {
	case args.WindowSize < 1:
		return args, fmt.Errorf("%s args: windowSize %d: want at least 1", Name, args.WindowSize)
	case args.PriorWeight < 0:
		return args, fmt.Errorf("%s args: priorWeight %g: want 0 or more", Name, args.PriorWeight)
	case !slices.Contains(TieBreaks, args.TieBreak):
		return args, fmt.Errorf("%s args: tieBreak %q: want one of %s (the first is the default)", Name, args.TieBreak, strings.Join(TieBreaks, ", "))
	}
	return args, nil
}

// NewWithOptions returns the plugin over the given state.
func NewWithOptions(o Options) *Plugin {
	if o.TieBreak == "" {
		o.TieBreak = DefaultArgs().TieBreak
	}
	return &Plugin{opts: o}
}

// Factory adapts NewWithOptions to a framework plugin factory.
func Factory(o Options) frameworkruntime.PluginFactory {
	return func(context.Context, runtime.Object, fwk.Handle) (fwk.Plugin, error) {
		return NewWithOptions(o), nil
	}
}

// Name implements fwk.Plugin.
func (p *Plugin) Name() string { return Name }

const fragKey fwk.StateKey = "strata.dev/gpufrag"

type fragState struct{ f *gpushare.Fragmenter }

func (s *fragState) Clone() fwk.StateData { return s }

// Fragmenter is the distribution the next pod is scored against.
func (p *Plugin) Fragmenter() *gpushare.Fragmenter {
	if p.opts.Fragmenter != nil {
		return p.opts.Fragmenter
	}
	return p.opts.Window.Fragmenter()
}

// PreScore reads the pod's request and the nodes' GPU state once per cycle
// and records the pod in the window.
func (p *Plugin) PreScore(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) *fwk.Status {
	d, err := gpustate.Prepare(ctx, cs, pod, nodes, p.opts.Source, p.opts.Claims)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if p.opts.Window != nil {
		p.opts.Window.Observe(d.Task)
	}
	cs.Write(fragKey, &fragState{p.Fragmenter()})
	return nil
}

// Score is sigmoid(decrease of expected fragmentation / 1000) * 100 for the
// best GPU choice on the node: 50 = unchanged, higher = less fragmentation.
func (p *Plugin) Score(_ context.Context, cs fwk.CycleState, _ *v1.Pod, ni fwk.NodeInfo) (int64, *fwk.Status) {
	d, err := gpustate.Read(cs)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	v, err := cs.Read(fragKey)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	n, ok := d.Nodes[ni.Node().Name]
	if !ok {
		return 0, nil
	}
	s, _, ok := v.(*fragState).f.FGDScore(n, d.Task)
	if !ok {
		return 0, nil // filtered out elsewhere; never prefer it
	}
	return s, nil
}

// ScoreExtensions implements fwk.ScorePlugin. FGD scores are already in
// 0..100 and are not rescaled (as in the paper's simulator); NormalizeScore
// only breaks ties.
func (p *Plugin) ScoreExtensions() fwk.ScoreExtensions { return p }

// NormalizeScore breaks ties among the nodes with the highest FGD score:
// the first of them in a fixed pseudo-random node order keeps the score,
// the others lose one point (if the best score is 0, the first gains one
// instead). Nothing else changes. With the default tieBreak a pod that asks
// no GPU first prefers, among those nodes, the one with the least idle GPU
// capacity (milli-GPU), then the node order; if nodes without GPUs are
// among the best, it prefers all of them and leaves the choice among them
// to the other plugins (preferGPULess).
//
// This is what makes FGD work. The score is an integer and many placements
// change no fragment (a CPU-only pod on a node with CPU to spare, a share on
// one of several idle GPUs), so hundreds of nodes often tie. The paper's
// simulator breaks ties by the lowest node name, names carrying a random
// prefix fixed for the run: a fixed order, so tied pods pile onto the same
// nodes. Upstream kube-scheduler picks uniformly at random, which spreads
// CPU-only and CPU-heavy pods over every GPU node until their CPU runs out
// and whole GPUs are stranded: on the paper's trace it allocates far fewer
// GPUs than a fixed order (see bench/RESULTS.md, Decisions).
//
// Why CPU-only pods look at idle GPUs: such a pod changes the fragmentation
// of a node only once it leaves too little CPU for some GPU task, so FGD
// scores it the same on a node whose GPUs are all taken (whose CPU no GPU
// task can use any more) and on a node with eight idle GPUs (whose CPU they
// will need). The former strands nothing. On the trace this did as well
// as the node order alone or slightly better, never worse, with a smaller
// spread across seeds (see bench/RESULTS.md, Decisions). Other keys
// measured did worse (../README.md): packing every pod onto the node with
// the least idle GPU, or the unquantised fragmentation decrease.
func (p *Plugin) NormalizeScore(_ context.Context, cs fwk.CycleState, _ *v1.Pod, scores fwk.NodeScoreList) *fwk.Status {
	switch p.opts.TieBreak {
	case TieBreakNone:
		return nil
	case TieBreakNodeOrder:
		BreakTies(scores)
		return nil
	case TieBreakCPUPodsByIdleGPU: // below
	default:
		return fwk.AsStatus(fmt.Errorf("%s: tieBreak %q", Name, p.opts.TieBreak))
	}
	d, err := gpustate.Read(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if d.Task.NumGPU > 0 {
		BreakTies(scores)
		return nil
	}
	if preferGPULess(scores, d.Nodes) {
		return nil
	}
	idle := func(name string) int64 {
		n, ok := d.Nodes[name]
		if !ok {
			return math.MaxInt64 // not scored from this state; never preferred
		}
		return n.GPUFreeTotal()
	}
	BreakTiesBy(scores, func(a, b string) bool {
		ia, ib := idle(a), idle(b)
		if ia != ib {
			return ia < ib
		}
		return nodeorder.Less(a, b)
	})
	return nil
}

// preferGPULess handles a pod asking no GPU when nodes without GPUs are
// among the best: they keep the highest score, the tied nodes with GPUs
// lose a point, and the GPU-less ones stay tied with each other, so the
// other score plugins (spreading, topology spread, affinity) choose among
// them as they would without Strata. Placing such a pod there strands no
// GPU, and FGD has nothing to say about one GPU-less node against another.
// It reports false, changing nothing, when no GPU-less node is among the
// best.
func preferGPULess(scores fwk.NodeScoreList, nodes map[string]gpushare.Node) bool {
	if len(scores) == 0 {
		return false
	}
	hi := scores[0].Score
	for _, s := range scores {
		hi = max(hi, s.Score)
	}
	gpuLess := func(name string) bool {
		n, ok := nodes[name]
		return ok && len(n.GPUFree) == 0
	}
	found := false
	for _, s := range scores {
		found = found || (s.Score == hi && gpuLess(s.Name))
	}
	if !found {
		return false
	}
	for i := range scores {
		switch {
		case scores[i].Score != hi:
		case gpuLess(scores[i].Name) && hi <= fwk.MinNodeScore:
			scores[i].Score++
		case !gpuLess(scores[i].Name) && hi > fwk.MinNodeScore:
			scores[i].Score--
		}
	}
	return true
}

// BreakTies makes the highest score unique, preferring the node that comes
// first in NodeOrder.
func BreakTies(scores fwk.NodeScoreList) { BreakTiesBy(scores, nodeorder.Less) }

// BreakTiesBy makes the highest score unique: of the nodes with that score
// the first by less keeps it and the others lose one point (if the highest
// score is 0, the first gains one instead). less must be a strict total
// order on node names, so the winner does not depend on the list's order.
func BreakTiesBy(scores fwk.NodeScoreList, less func(a, b string) bool) {
	if len(scores) < 2 {
		return
	}
	hi := scores[0].Score
	for _, s := range scores {
		hi = max(hi, s.Score)
	}
	first := -1
	for i, s := range scores {
		if s.Score == hi && (first < 0 || less(s.Name, scores[first].Name)) {
			first = i
		}
	}
	if hi <= fwk.MinNodeScore {
		scores[first].Score++
		return
	}
	for i := range scores {
		if i != first && scores[i].Score == hi {
			scores[i].Score--
		}
	}
}

// Package gpufrag is the StrataGPUFrag score plugin: Fragmentation Gradient
// Descent (FGD, USENIX ATC'23). It prefers the node whose expected GPU
// fragmentation, over the distribution of recent GPU requests, grows least
// (or shrinks most) when the pod lands there. See ../README.md.
package gpufrag

import (
	"context"
	"fmt"
	"hash/fnv"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/strata-dev/strata/pkg/gpushare"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpustate"
)

// Name is the plugin name in the scheduler profile.
const Name = "StrataGPUFrag"

// Values of Args.TieBreak.
const (
	TieBreakNodeOrder = "nodeOrder"
	TieBreakNone      = "none"
)

// Args configure the plugin (pluginConfig args, all optional).
type Args struct {
	// WindowSize is how many recent pods define the workload distribution
	// (default 1000).
	WindowSize int `json:"windowSize,omitempty"`
	// PriorWeight is how many observations the built-in prior is worth
	// (default 100).
	PriorWeight float64 `json:"priorWeight,omitempty"`
	// TieBreak is how the plugin separates nodes with the same FGD score:
	// "nodeOrder" (default) prefers the first in a fixed pseudo-random node
	// order (FNV-1a hash of the name), as the paper's simulator does; "none"
	// leaves ties to kube-scheduler (uniformly random per pod).
	TieBreak string `json:"tieBreak,omitempty"`
}

// Options wire the plugin to a GPU state other than DRA's (the replay).
type Options struct {
	Source gpustate.Source
	Claims gpustate.ClaimGetter
	// Fragmenter, if set, fixes the distribution (the paper's replay uses the
	// trace's task distribution); otherwise a sliding window learns it.
	Fragmenter *gpushare.Fragmenter
	Window     *gpushare.Window
	// NoTieBreak leaves equal scores to kube-scheduler's random choice
	// instead of the fixed node order (Args.TieBreak "none").
	NoTieBreak bool
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

// New is the product constructor, for app.WithPlugin(gpufrag.Name, gpufrag.New):
// GPU state and claims come from the framework's SharedDRAManager, the
// distribution from a sliding window of the pods it scores.
func New(_ context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args := Args{WindowSize: 1000, PriorWeight: 100, TieBreak: TieBreakNodeOrder}
	if obj != nil {
		if err := frameworkruntime.DecodeInto(obj, &args); err != nil {
			return nil, fmt.Errorf("%s args: %w", Name, err)
		}
	}
	if args.TieBreak != TieBreakNodeOrder && args.TieBreak != TieBreakNone {
		return nil, fmt.Errorf("%s args: tieBreak %q: want %q or %q", Name, args.TieBreak, TieBreakNodeOrder, TieBreakNone)
	}
	m := h.SharedDRAManager()
	if m == nil {
		return nil, fmt.Errorf("%s needs the DRA manager (DynamicResourceAllocation enabled)", Name)
	}
	return NewWithOptions(Options{
		Source:     gpustate.DRASource{Manager: m},
		Claims:     gpustate.DRAClaims(m),
		Window:     gpushare.NewWindow(args.WindowSize, gpushare.DefaultPrior(), args.PriorWeight),
		NoTieBreak: args.TieBreak == TieBreakNone,
	}), nil
}

// NewWithOptions returns the plugin over the given state.
func NewWithOptions(o Options) *Plugin { return &Plugin{opts: o} }

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
// instead). Nothing else changes.
//
// This is what makes FGD work. The score is an integer and many placements
// change no fragment (a CPU-only pod on a node with CPU to spare, a share on
// one of several idle GPUs), so hundreds of nodes often tie. The paper's
// simulator breaks ties by the lowest node name, names carrying a random
// prefix fixed for the run: a fixed order, so tied pods pile onto the same
// nodes. Upstream kube-scheduler picks uniformly at random, which spreads
// CPU-only and CPU-heavy pods over every GPU node until their CPU runs out
// and whole GPUs are stranded: 89.97% GPU allocation on the paper's trace
// instead of about 95% (bench/RESULTS.md).
func (p *Plugin) NormalizeScore(_ context.Context, _ fwk.CycleState, _ *v1.Pod, scores fwk.NodeScoreList) *fwk.Status {
	if !p.opts.NoTieBreak {
		BreakTies(scores)
	}
	return nil
}

// BreakTies makes the highest score unique, preferring the node that comes
// first in NodeOrder.
func BreakTies(scores fwk.NodeScoreList) {
	if len(scores) < 2 {
		return
	}
	hi := scores[0].Score
	for _, s := range scores {
		hi = max(hi, s.Score)
	}
	first := -1
	for i, s := range scores {
		if s.Score == hi && (first < 0 || NodeOrderLess(s.Name, scores[first].Name)) {
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

// NodeOrderLess is the fixed node order ties are broken by: FNV-1a hash of
// the node name, then the name. It is pseudo-random (unrelated to how nodes
// are named, e.g. by GPU model) and the same in every scheduling cycle and
// every scheduler replica.
func NodeOrderLess(a, b string) bool {
	ha, hb := nodeKey(a), nodeKey(b)
	if ha != hb {
		return ha < hb
	}
	return a < b
}

func nodeKey(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

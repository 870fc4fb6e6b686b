// Package gpufrag is the StrataGPUFrag score plugin: Fragmentation Gradient
// Descent (FGD, USENIX ATC'23). It prefers the node whose expected GPU
// fragmentation, over the distribution of recent GPU requests, grows least
// (or shrinks most) when the pod lands there. See ../README.md.
package gpufrag

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/strata-dev/strata/pkg/gpushare"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpustate"
)

// Name is the plugin name in the scheduler profile.
const Name = "StrataGPUFrag"

// Args configure the plugin (pluginConfig args, all optional).
type Args struct {
	// WindowSize is how many recent pods define the workload distribution
	// (default 1000).
	WindowSize int `json:"windowSize,omitempty"`
	// PriorWeight is how many observations the built-in prior is worth
	// (default 100).
	PriorWeight float64 `json:"priorWeight,omitempty"`
}

// Options wire the plugin to a GPU state other than DRA's (the replay).
type Options struct {
	Source gpustate.Source
	Claims gpustate.ClaimGetter
	// Fragmenter, if set, fixes the distribution (the paper's replay uses the
	// trace's task distribution); otherwise a sliding window learns it.
	Fragmenter *gpushare.Fragmenter
	Window     *gpushare.Window
}

// Plugin scores nodes by FGD.
type Plugin struct {
	opts Options
}

var (
	_ fwk.PreScorePlugin = &Plugin{}
	_ fwk.ScorePlugin    = &Plugin{}
)

// New is the product constructor, for app.WithPlugin(gpufrag.Name, gpufrag.New):
// GPU state and claims come from the framework's SharedDRAManager, the
// distribution from a sliding window of the pods it scores.
func New(_ context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args := Args{WindowSize: 1000, PriorWeight: 100}
	if obj != nil {
		if err := frameworkruntime.DecodeInto(obj, &args); err != nil {
			return nil, fmt.Errorf("%s args: %w", Name, err)
		}
	}
	m := h.SharedDRAManager()
	if m == nil {
		return nil, fmt.Errorf("%s needs the DRA manager (DynamicResourceAllocation enabled)", Name)
	}
	return NewWithOptions(Options{
		Source: gpustate.DRASource{Manager: m},
		Claims: gpustate.DRAClaims(m),
		Window: gpushare.NewWindow(args.WindowSize, gpushare.DefaultPrior(), args.PriorWeight),
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

// ScoreExtensions implements fwk.ScorePlugin; FGD scores are already in
// 0..100 and are not normalised (as in the paper's simulator).
func (p *Plugin) ScoreExtensions() fwk.ScoreExtensions { return nil }

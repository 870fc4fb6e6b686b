// Package gpubestfit is the StrataGPUBestFit score plugin: the best-fit
// baseline of the FGD paper (prefer the node with the least CPU and GPU
// left after placement). Strata ships it as a comparison and fallback;
// StrataGPUFrag is the default.
package gpubestfit

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/strata-dev/strata/pkg/gpushare"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpustate"
)

// Name is the plugin name in the scheduler profile.
const Name = "StrataGPUBestFit"

// Plugin scores nodes by best fit.
type Plugin struct {
	src    gpustate.Source
	claims gpustate.ClaimGetter
}

var (
	_ fwk.PreScorePlugin  = &Plugin{}
	_ fwk.ScorePlugin     = &Plugin{}
	_ fwk.ScoreExtensions = &Plugin{}
)

// New is the product constructor (GPU state from the SharedDRAManager,
// shared through sources).
func New(sources *gpustate.Sources) frameworkruntime.PluginFactory {
	return func(_ context.Context, _ runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
		m, src, err := sources.Handle(h, Name)
		if err != nil {
			return nil, err
		}
		return &Plugin{src: src, claims: gpustate.DRAClaims(m)}, nil
	}
}

// Factory returns a factory over another GPU state (the replay).
func Factory(src gpustate.Source, claims gpustate.ClaimGetter) frameworkruntime.PluginFactory {
	return func(context.Context, runtime.Object, fwk.Handle) (fwk.Plugin, error) {
		return &Plugin{src: src, claims: claims}, nil
	}
}

// Name implements fwk.Plugin.
func (p *Plugin) Name() string { return Name }

// PreScore reads the pod's request and the nodes' GPU state.
func (p *Plugin) PreScore(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) *fwk.Status {
	if _, err := gpustate.Prepare(ctx, cs, pod, nodes, p.src, p.claims); err != nil {
		return fwk.AsStatus(err)
	}
	return nil
}

// Score implements fwk.ScorePlugin.
func (p *Plugin) Score(_ context.Context, cs fwk.CycleState, _ *v1.Pod, ni fwk.NodeInfo) (int64, *fwk.Status) {
	d, err := gpustate.Read(cs)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	return gpushare.BestFitScore(d.Nodes[ni.Node().Name], d.Task), nil
}

// ScoreExtensions implements fwk.ScorePlugin.
func (p *Plugin) ScoreExtensions() fwk.ScoreExtensions { return p }

// NormalizeScore maps the scores linearly onto 0..100 (all 0 if equal).
func (p *Plugin) NormalizeScore(_ context.Context, _ fwk.CycleState, _ *v1.Pod, scores fwk.NodeScoreList) *fwk.Status {
	Normalize(scores)
	return nil
}

// Normalize is min-max normalisation onto 0..MaxNodeScore.
func Normalize(scores fwk.NodeScoreList) {
	if len(scores) == 0 {
		return
	}
	lo, hi := scores[0].Score, scores[0].Score
	for _, s := range scores {
		lo, hi = min(lo, s.Score), max(hi, s.Score)
	}
	for i := range scores {
		if hi == lo {
			scores[i].Score = fwk.MinNodeScore
		} else {
			scores[i].Score = (scores[i].Score - lo) * (fwk.MaxNodeScore - fwk.MinNodeScore) / (hi - lo)
		}
	}
}

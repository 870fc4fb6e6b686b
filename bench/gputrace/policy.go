// Placement policies: the scheduler profiles the replays compare, and the
// kube-scheduler profile and GPU picker each one is run with.

package main

import (
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/latest"

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

package scheduler

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	componentbaseconfigv1alpha1 "k8s.io/component-base/config/v1alpha1"
	configv1 "k8s.io/kube-scheduler/config/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpufit"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpufrag"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpupreempt"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/nodeorder"
)

// dynamicResources is upstream's DRA plugin, which filters, allocates and
// binds the GPUs.
const dynamicResources = "DynamicResources"

// FragWeight is StrataGPUFrag's weight against upstream's unit weights.
// Fragmentation comes first on GPU nodes: at a weight comparable to the
// spreading scorers (NodeResourcesFit LeastAllocated, BalancedAllocation,
// up to 100 points each) they undo FGD's packing of tied pods, and the
// replay allocated fewer GPUs than upstream's default scoring
// (bench/RESULTS.md, pkg/scheduler/plugins/README.md). The price: on GPU
// nodes, soft preferences (preferred affinity, topology spread,
// PreferNoSchedule) only decide between nodes FGD scores the same. Pods
// asking no GPU are sent to nodes without GPUs first and spread there as
// upstream does (StrataGPUFrag's preferGPULess).
const FragWeight = 100

// ScorePlugin is a score plugin and its weight in Strata's profile.
type ScorePlugin struct {
	Name   string
	Weight int32
}

// ScorePlugins are the profile's score plugins with their weights:
// upstream's default scorers with their default weights and StrataGPUFrag
// at FragWeight, all multiplied by nodeorder.Scale, and StrataNodeOrder at
// 1, which breaks ties between equal totals by a fixed node order (see
// package nodeorder). Every scorer kube-scheduler enables by default must
// be here: one left at its default weight would be outweighed by the
// tie-break (TestScoreWeights checks this against upstream's defaults).
func ScorePlugins() []ScorePlugin {
	scaled := []ScorePlugin{
		{"TaintToleration", 3},
		{"NodeAffinity", 2},
		{"NodeResourcesFit", 1},
		{"VolumeBinding", 1},
		{"PodTopologySpread", 2},
		{"InterPodAffinity", 2},
		{dynamicResources, 2},
		{"NodeResourcesBalancedAllocation", 1},
		{"ImageLocality", 1},
		{gpufrag.Name, FragWeight},
	}
	for i := range scaled {
		scaled[i].Weight *= int32(nodeorder.Scale)
	}
	return append(scaled, ScorePlugin{nodeorder.Name, 1})
}

// Configuration is the KubeSchedulerConfiguration Strata runs: the default
// profile plus a cheap GPU filter ahead of DynamicResources',
// fragmentation-aware GPU scoring, GPU preemption and a deterministic
// tie-break. kubeconfig is the scheduler's credentials; parallelism its
// worker count (see Parallelism). It states only what Strata changes:
// kube-scheduler's defaulting fills in the rest, so its own defaults
// (such as the default plugins) follow the embedded version.
func Configuration(kubeconfig string, parallelism int) *configv1.KubeSchedulerConfiguration {
	fragArgs := gpufrag.DefaultArgs()
	return &configv1.KubeSchedulerConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: configv1.SchemeGroupVersion.String(), Kind: "KubeSchedulerConfiguration"},
		ClientConnection: componentbaseconfigv1alpha1.ClientConnectionConfiguration{
			Kubeconfig: kubeconfig,
			// Same process as the API server: the default 50 requests/s
			// throttled every GPU pod's claim write and binding.
			QPS:   500,
			Burst: 1000,
		},
		LeaderElection: componentbaseconfigv1alpha1.LeaderElectionConfiguration{LeaderElect: ptr.To(false)},
		// A fragmentation score compares nodes, and a sample would hide
		// the best one: score every feasible node.
		PercentageOfNodesToScore: ptr.To[int32](100),
		Parallelism:              ptr.To(int32(parallelism)),
		Profiles: []configv1.KubeSchedulerProfile{{
			SchedulerName: ptr.To(corev1.DefaultSchedulerName),
			Plugins: &configv1.Plugins{
				PreFilter: enabled(gpufit.Name),
				// StrataGPUFit turns away nodes without GPU room before
				// DynamicResources runs its allocator there: disabling and
				// re-enabling DynamicResources here puts it after
				// StrataGPUFit (upstream orders plugins enabled for one
				// extension point after the multiPoint ones).
				Filter: configv1.PluginSet{
					Disabled: plugins(dynamicResources),
					Enabled:  plugins(gpufit.Name, dynamicResources),
				},
				// StrataGPUFit marks the claims it reserves in the GPU state
				// the Strata plugins share, so that the next cycles count
				// them until the claim informer shows them allocated.
				Reserve: enabled(gpufit.Name),
				// After DefaultPreemption, which cannot free DRA devices.
				PostFilter: enabled(gpupreempt.Name),
				PreScore:   enabled(gpufrag.Name),
				Score:      configv1.PluginSet{Enabled: scorePlugins()},
			},
			// Stated in full, so that the file shows what the plugin runs with.
			PluginConfig: []configv1.PluginConfig{{Name: gpufrag.Name, Args: runtime.RawExtension{Object: &fragArgs}}},
		}},
	}
}

// SecondProfile turns c into a scheduler that runs beside a cluster's own:
// its one profile answers to schedulerName (pods opt in with
// spec.schedulerName), and it talks to the API server at the client-go
// defaults rather than as an in-process peer.
func SecondProfile(c *configv1.KubeSchedulerConfiguration, schedulerName string) {
	c.Profiles[0].SchedulerName = ptr.To(schedulerName)
	c.ClientConnection.QPS, c.ClientConnection.Burst = 50, 100
}

// YAML is a configuration as the file kube-scheduler reads.
func YAML(c *configv1.KubeSchedulerConfiguration) ([]byte, error) {
	data, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("marshal the scheduler configuration: %w", err)
	}
	return data, nil
}

func plugins(names ...string) []configv1.Plugin {
	out := make([]configv1.Plugin, len(names))
	for i, n := range names {
		out[i] = configv1.Plugin{Name: n}
	}
	return out
}

func enabled(names ...string) configv1.PluginSet {
	return configv1.PluginSet{Enabled: plugins(names...)}
}

func scorePlugins() []configv1.Plugin {
	var out []configv1.Plugin
	for _, p := range ScorePlugins() {
		out = append(out, configv1.Plugin{Name: p.Name, Weight: ptr.To(p.Weight)})
	}
	return out
}

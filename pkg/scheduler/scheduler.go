// Package scheduler assembles Strata's kube-scheduler: the upstream
// scheduler with Strata's GPU plugins registered and a profile that uses
// them beside upstream's DynamicResources (GPU filter and allocation) and
// GangScheduling (PodGroups).
package scheduler

import (
	"fmt"
	"runtime"
	"strings"

	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpubestfit"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpufit"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpufrag"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpupreempt"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpustate"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/nodeorder"
)

// Registry holds Strata's out-of-tree plugins. The GPU plugins of the
// scheduler it is given to share one GPU state (gpustate.Sources).
func Registry() frameworkruntime.Registry {
	sources := gpustate.NewSources()
	return frameworkruntime.Registry{
		gpufit.Name:     gpufit.New(sources),
		gpufrag.Name:    gpufrag.New(sources),
		gpubestfit.Name: gpubestfit.New(sources),
		gpupreempt.Name: gpupreempt.New(sources),
		nodeorder.Name:  nodeorder.New,
	}
}

// Plugins registers Strata's out-of-tree plugins with kube-scheduler.
func Plugins() []schedulerapp.Option {
	var opts []schedulerapp.Option
	for name, factory := range Registry() {
		opts = append(opts, schedulerapp.WithPlugin(name, factory))
	}
	return opts
}

// FragWeight is StrataGPUFrag's weight against upstream's unit weights.
// Fragmentation comes first on GPU nodes: at 5 the spreading scorers
// (NodeResourcesFit LeastAllocated, BalancedAllocation, up to 100 points
// each) undid FGD's packing of tied pods and the replay fell to 93.11%
// GPU allocation, below upstream's default scoring (93.74%); at 100 it
// gives 95.47% (bench/RESULTS.md). The price: on GPU nodes, soft
// preferences (preferred affinity, topology spread, PreferNoSchedule)
// only decide between nodes FGD scores the same. Pods asking no GPU are
// sent to nodes without GPUs first and spread there as upstream does
// (StrataGPUFrag's preferGPULess).
const FragWeight = 100

// ScorePlugin is a score plugin and its weight in Strata's profile.
type ScorePlugin struct {
	Name   string
	Weight int32
}

// ScorePlugins are the profile's score plugins with their weights:
// upstream's default scorers with their default weights and StrataGPUFrag
// at FragWeight, all multiplied by nodeorder.Scale, and StrataNodeOrder at 1, which
// breaks ties between equal totals by a fixed node order (see package
// nodeorder). Every scorer kube-scheduler enables by default must be here:
// one left at its default weight would be outweighed by the tie-break
// (TestScoreWeights checks this against upstream's defaults).
func ScorePlugins() []ScorePlugin {
	scaled := []ScorePlugin{
		{"TaintToleration", 3},
		{"NodeAffinity", 2},
		{"NodeResourcesFit", 1},
		{"VolumeBinding", 1},
		{"PodTopologySpread", 2},
		{"InterPodAffinity", 2},
		{"DynamicResources", 2},
		{"NodeResourcesBalancedAllocation", 1},
		{"ImageLocality", 1},
		{gpufrag.Name, FragWeight},
	}
	for i := range scaled {
		scaled[i].Weight *= int32(nodeorder.Scale)
	}
	return append(scaled, ScorePlugin{nodeorder.Name, 1})
}

// Config is the KubeSchedulerConfiguration Strata runs: the default
// profile plus a cheap GPU filter ahead of DynamicResources',
// fragmentation-aware GPU scoring, GPU preemption and a deterministic
// tie-break. All feasible nodes are scored, because a
// fragmentation score compares nodes and a sample would hide the best
// one. kubeconfig is the scheduler's credentials.
func Config(kubeconfig string) string {
	var score strings.Builder
	for _, p := range ScorePlugins() {
		fmt.Fprintf(&score, "      - name: %s\n        weight: %d\n", p.Name, p.Weight)
	}
	return fmt.Sprintf(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  # Same process as the API server: the default 50 requests/s throttled
  # every GPU pod's claim write and binding (12-14 pods/s in the replay).
  qps: 500
  burst: 1000
leaderElection:
  leaderElect: false
percentageOfNodesToScore: 100
# See Parallelism.
parallelism: %[6]d
profiles:
- schedulerName: default-scheduler
  plugins:
    preFilter:
      enabled:
      - name: %[5]s
    # %[5]s turns away nodes without GPU room before DynamicResources
    # runs its allocator there: disabling and re-enabling DynamicResources
    # here puts it after %[5]s (upstream orders plugins enabled for one
    # extension point after the multiPoint ones).
    filter:
      disabled:
      - name: DynamicResources
      enabled:
      - name: %[5]s
      - name: DynamicResources
    # %[5]s marks the claims it reserves in the GPU state the Strata
    # plugins share, so that the next cycles count them until the claim
    # informer shows them allocated.
    reserve:
      enabled:
      - name: %[5]s
    # After DefaultPreemption, which cannot free DRA devices.
    postFilter:
      enabled:
      - name: %[3]s
    preScore:
      enabled:
      - name: %[2]s
    score:
      enabled:
%[4]s  pluginConfig:
  - name: %[2]s
    args:
      windowSize: 1000
      priorWeight: 100
`, kubeconfig, gpufrag.Name, gpupreempt.Name, score.String(), gpufit.Name, Parallelism(runtime.GOMAXPROCS(0)))
}

// Parallelism is kube-scheduler's worker count for its parallel steps
// (Filter and Score over the nodes, preemption's dry runs) on a process
// with procs cores: one fewer than the cores, at most upstream's 16.
// The scheduler shares its process with the API server and etcd, and a
// parallel step waits for every worker it started; a worker that finds
// no core free waits behind the API server's goroutines, and the whole
// scheduling cycle with it.
func Parallelism(procs int) int {
	return min(max(procs-1, 1), 16)
}

// Package scheduler assembles Strata's kube-scheduler: the upstream
// scheduler with Strata's GPU plugins registered and a profile that uses
// them beside upstream's DynamicResources (GPU filter and allocation) and
// GangScheduling (PodGroups).
package scheduler

import (
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

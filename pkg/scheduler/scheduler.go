// Package scheduler assembles Strata's kube-scheduler: the upstream
// scheduler with Strata's GPU plugins registered and a profile that uses
// them beside upstream's DynamicResources (GPU filter and allocation) and
// GangScheduling (PodGroups).
package scheduler

import (
	"fmt"

	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"

	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpubestfit"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpufrag"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpupreempt"
)

// Plugins registers Strata's out-of-tree plugins with kube-scheduler.
func Plugins() []schedulerapp.Option {
	return []schedulerapp.Option{
		schedulerapp.WithPlugin(gpufrag.Name, gpufrag.New),
		schedulerapp.WithPlugin(gpubestfit.Name, gpubestfit.New),
		schedulerapp.WithPlugin(gpupreempt.Name, gpupreempt.New),
	}
}

// Config is the KubeSchedulerConfiguration Strata runs: the default
// profile plus fragmentation-aware GPU scoring and GPU preemption. All feasible nodes are
// scored, because a fragmentation score compares nodes and a sample would
// hide the best one. kubeconfig is the scheduler's credentials.
func Config(kubeconfig string) string {
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
profiles:
- schedulerName: default-scheduler
  plugins:
    # After DefaultPreemption, which cannot free DRA devices.
    postFilter:
      enabled:
      - name: %[3]s
    preScore:
      enabled:
      - name: %[2]s
    score:
      enabled:
      - name: %[2]s
        weight: 5
  pluginConfig:
  - name: %[2]s
    args:
      windowSize: 1000
      priorWeight: 100
`, kubeconfig, gpufrag.Name, gpupreempt.Name)
}

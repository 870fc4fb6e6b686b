package controlplane

import (
	"context"
	"fmt"

	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	scheduleroptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

// SchedulerOption adds out-of-tree plugins to kube-scheduler's registry;
// Strata's scheduling plugins arrive this way without changes here.
type SchedulerOption = schedulerapp.Option

func (c *Config) schedulerArgs() []string {
	kubeconfig := c.kubeconfigPath("scheduler")
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--profiling=false",
		"--feature-gates=" + c.featureGates(),
	}
}

// RunScheduler runs kube-scheduler with the given out-of-tree plugins until
// ctx is done. extraArgs may carry --config for a scheduler profile.
func RunScheduler(ctx context.Context, c *Config, extraArgs []string, plugins ...SchedulerOption) error {
	opts := scheduleroptions.NewOptions()
	if err := parseComponentFlags("kube-scheduler", *opts.Flags, append(c.schedulerArgs(), extraArgs...)); err != nil {
		return err
	}
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-scheduler feature gates: %w", err)
	}
	cc, sched, err := schedulerapp.Setup(ctx, opts, plugins...)
	if err != nil {
		return fmt.Errorf("kube-scheduler setup: %w", err)
	}
	if err := schedulerapp.Run(ctx, cc, sched); err != nil {
		return fmt.Errorf("kube-scheduler: %w", err)
	}
	return nil
}

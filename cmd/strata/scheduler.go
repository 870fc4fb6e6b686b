package main

import (
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"

	"github.com/strata-dev/strata/pkg/scheduler"
)

func newSchedulerCommand() *cobra.Command {
	var kubeconfig, name string
	cmd := &cobra.Command{
		Use:   "scheduler [--scheduler-name strata-gpu] [--kubeconfig K]",
		Short: "Run kube-scheduler with Strata's GPU plugins as a second scheduler on any cluster",
		Long: `Runs upstream kube-scheduler with Strata's plugins (GPU fit, fragmentation-aware
GPU scoring, GPU preemption, deterministic tie-break) in one profile named
--scheduler-name, beside the cluster's own scheduler: pods opt in with
spec.schedulerName. In a pod it uses the pod's service account (bind it to
system:kube-scheduler and system:volume-scheduler); the Helm chart in
deploy/strata does.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
				return fmt.Errorf("--scheduler-name %q: %s; use a DNS name such as strata-gpu", name, strings.Join(errs, "; "))
			}
			cfg := scheduler.Configuration(kubeconfig, scheduler.Parallelism(goruntime.GOMAXPROCS(0)))
			scheduler.SecondProfile(cfg, name)
			data, err := scheduler.YAML(cfg)
			if err != nil {
				return err
			}
			dir, err := os.MkdirTemp("", "strata-scheduler-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			file := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(file, data, 0o600); err != nil {
				return err
			}
			// Upstream's own command, built only now: it registers
			// process-wide flags (klog's) that other subcommands share.
			ks := schedulerapp.NewSchedulerCommand(scheduler.Plugins()...)
			ks.SetArgs([]string{"--config=" + file, "--secure-port=0"})
			return ks.ExecuteContext(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default: in-cluster)")
	cmd.Flags().StringVar(&name, "scheduler-name", "strata-gpu", "the profile's schedulerName, which pods name in spec.schedulerName")
	return cmd
}

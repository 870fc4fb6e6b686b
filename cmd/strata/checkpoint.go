package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/strata-dev/strata/pkg/checkpoint"
	"github.com/strata-dev/strata/pkg/registry"
)

func newCheckpointCommand() *cobra.Command {
	var (
		kubeconfig, dataDir, namespace, container, push string
		timeout                                         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "checkpoint POD",
		Short: "Checkpoint a running container and print the archive's path",
		Long: `Checkpoint asks the pod's kubelet to checkpoint one running container
(the kubelet checkpoint API) and prints the path of the archive it wrote on
the node. The container keeps running. The node needs criu.

With --push REF the archive is also pushed as an OCI image annotated as a
checkpoint: a pod whose container names that image restores the container
from it on a Strata node (containerd 2), counters, memory and all.`,
		Example: `  strata checkpoint counter
  strata checkpoint trainer -c worker -n ml --push localhost:5000/ml/trainer-ckpt:1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := kubeconfigPath(kubeconfig, dataDir)
			if err != nil {
				return err
			}
			rc, err := clientcmd.BuildConfigFromFlags("", path)
			if err != nil {
				return fmt.Errorf("kubeconfig %s: %w (is `strata server` running? pass --kubeconfig or --data-dir)", path, err)
			}
			cs, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return err
			}
			res, err := checkpoint.Container(cmd.Context(), cs, checkpoint.Request{Namespace: namespace, Pod: args[0], Container: container, Timeout: timeout})
			if err != nil {
				return err
			}
			for _, a := range res.Archives {
				fmt.Fprintln(cmd.OutOrStdout(), a)
			}
			if push == "" {
				return nil
			}
			img, err := registry.BuildCheckpointImage(res.Archives[0], res.Container)
			if err != nil {
				return fmt.Errorf("%w (the archive is on node %s; run this where its file system is)", err, res.Node)
			}
			ref, err := registry.Push(img, push)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "pushed checkpoint image %s\n", ref)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig (default: $KUBECONFIG, then DATA_DIR/admin.kubeconfig)")
	f.StringVar(&dataDir, "data-dir", defaultDataDir(), "the local server's data directory, for its admin kubeconfig")
	f.StringVarP(&namespace, "namespace", "n", "default", "namespace of the pod")
	f.StringVarP(&container, "container", "c", "", "container to checkpoint (default: the pod's only container)")
	f.DurationVar(&timeout, "timeout", 0, "how long the kubelet may take (default: the kubelet's, 4m)")
	f.StringVar(&push, "push", "", "also push the archive as a restorable OCI image to this reference")
	return cmd
}

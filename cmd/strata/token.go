package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/strata-dev/strata/pkg/jointoken"
)

func newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Join tokens for agents (upstream bootstrap tokens, pinned to the server's CA)"}
	var (
		kubeconfig, dataDir, description string
		ttl                              time.Duration
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a bootstrap token and print the join string for it",
		Long: `Create stores an upstream bootstrap token (a Secret of type
bootstrap.kubernetes.io/token in kube-system, deleted by the controller
manager once it expires) and prints the join string an agent takes:
strata1:sha256:<hash of the server's CA public key>:<token>. The hash pins
the CA, so an agent trusts no other server. Delete the Secret to revoke.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := kubeconfigPath(kubeconfig, dataDir)
			if err != nil {
				return err
			}
			rc, err := clientcmd.BuildConfigFromFlags("", path)
			if err != nil {
				return fmt.Errorf("kubeconfig %s: %w (is `strata server` running? pass --kubeconfig or --data-dir)", path, err)
			}
			caPEM := rc.CAData
			if len(caPEM) == 0 && rc.CAFile != "" {
				if caPEM, err = os.ReadFile(rc.CAFile); err != nil {
					return fmt.Errorf("the cluster's CA: %w", err)
				}
			}
			if len(caPEM) == 0 {
				return fmt.Errorf("kubeconfig %s names no CA for the server: a join token pins the CA, so the kubeconfig must carry it", path)
			}
			cs, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return err
			}
			j, err := jointoken.Create(cmd.Context(), cs, caPEM, ttl, description)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), j)
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig (default: $KUBECONFIG, then DATA_DIR/admin.kubeconfig)")
	f.StringVar(&dataDir, "data-dir", defaultDataDir(), "the local server's data directory, for its admin kubeconfig")
	f.DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid")
	f.StringVar(&description, "description", "", "what the token is for (stored with it)")
	cmd.AddCommand(create)
	return cmd
}

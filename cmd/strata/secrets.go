package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/strata-dev/strata/pkg/encryption"
	"github.com/strata-dev/strata/pkg/layout"
)

func newSecretsEncryptCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "secrets-encrypt", Short: "Encryption of Secrets at rest (the key under the data dir)"}
	var dataDir string
	status := &cobra.Command{
		Use:   "status",
		Short: "Print the keys Secrets are encrypted with; the first one encrypts new writes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := layout.New(dataDir)
			if err != nil {
				return err
			}
			keys, err := encryption.Load(l.EncryptionConfig())
			if err != nil {
				return err
			}
			for i, k := range keys {
				use := "reads"
				if i == 0 {
					use = "writes and reads"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "secretbox key %s (%s)\n", k.Name, use)
			}
			return nil
		},
	}
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Encrypt Secrets with a new key: make it, rewrite every Secret, drop the old key",
		Long: `Rotate runs against the local server (its data dir holds the key file):
it adds a new key as the one writes use, waits for the API server to load
it, rewrites every Secret so that it is stored with the new key, then
removes the old keys. If it stops half way the old keys stay (Secrets still
read) and running it again finishes the job.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := layout.New(dataDir)
			if err != nil {
				return err
			}
			rc, err := clientcmd.BuildConfigFromFlags("", l.AdminKubeconfig())
			if err != nil {
				return fmt.Errorf("admin kubeconfig %s: %w (is `strata server` running with --data-dir %s?)", l.AdminKubeconfig(), err, l.DataDir)
			}
			cs, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return err
			}
			if _, err := os.Stat(l.EncryptionConfig()); err != nil {
				return fmt.Errorf("no encryption config in %s: start the server once to create it: %w", l.DataDir, err)
			}
			return encryption.Rotate(cmd.Context(), l.EncryptionConfig(), cs, cmd.OutOrStdout())
		},
	}
	for _, c := range []*cobra.Command{status, rotate} {
		c.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "the local server's data directory")
		cmd.AddCommand(c)
	}
	return cmd
}

// strata is a Kubernetes platform in one binary: `strata server` runs a
// whole cluster, and the other subcommands are the tools to use it.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := newRootCommand()
	if err := root.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "strata: %v\n", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "strata",
		Short:         "Strata: a Kubernetes platform in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see `%s --help`)", err, c.CommandPath())
	})
	root.AddCommand(newServerCommand(), newKubectlCommand(), newImageCommand(), newKeysCommand(), newExtensionsCommand(), newSchedulerCommand(), newFunctionCommand(), newGPUCommand(), newCheckpointCommand(), newTokenCommand(), newAgentCommand(), newSecretsEncryptCommand(), newVersionCommand())
	return root
}

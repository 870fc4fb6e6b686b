package main

import (
	"fmt"

	"github.com/spf13/cobra"
	strataversion "github.com/strata-dev/strata/pkg/version"
	"k8s.io/component-base/version"
)

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the Strata and Kubernetes versions",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "strata %s (Kubernetes %s, %s)\n", strataversion.Version, version.Get().GitVersion, version.Get().GoVersion)
		},
	}
}

package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/strata-dev/strata/pkg/dra"
)

func newGPUCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "gpu", Short: "GPUs as the node's DRA driver sees them"}
	var opts dra.Options
	list := &cobra.Command{
		Use:   "list",
		Short: "List this machine's GPUs (NVML, or a simulated inventory)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.NodeName, _ = os.Hostname()
			gpus, err := dra.Inventory(cmd.Context(), opts)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DEVICE\tMODEL\tMEMORY\tUUID\tMIG\tBACKEND")
			for _, g := range gpus {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", g.DeviceName(), g.Model,
					resource.NewQuantity(g.MemoryBytes, resource.BinarySI), g.UUID, g.MIGCapable, g.Backend)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&opts.Backend, "gpu-backend", "auto", "auto, nvml or simulated")
	list.Flags().StringVar(&opts.Simulated, "simulated-gpus", "", "simulated inventory, e.g. 4xA100-80GB")
	list.Flags().StringVar(&opts.SimulatedFile, "simulated-gpus-file", "", "file with a simulated inventory")
	cmd.AddCommand(list)
	return cmd
}

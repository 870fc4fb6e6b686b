package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/strata-dev/strata/pkg/dra"
)

func newGPUCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "gpu", Short: "GPUs as the node's DRA driver sees them"}
	var opts dra.Options
	var output string
	list := &cobra.Command{
		Use:   "list",
		Short: "List this machine's GPUs (NVML, or a simulated inventory)",
		Long: "List this machine's GPUs as the node's DRA driver finds them. -o yaml prints the " +
			"devices the driver publishes in its ResourceSlice (resource.k8s.io/v1), capacity included.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "yaml" {
				return fmt.Errorf("unknown --output %q: use table or yaml", output)
			}
			opts.NodeName, _ = os.Hostname()
			gpus, err := dra.Inventory(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if output == "yaml" {
				return printDevices(cmd.OutOrStdout(), gpus)
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
	list.Flags().StringVarP(&output, "output", "o", "table", "table, or yaml: the ResourceSlice devices the driver publishes")
	cmd.AddCommand(list, newGPUDriverCommand())
	return cmd
}

// printDevices writes the ResourceSlice devices of gpus as YAML.
func printDevices(w io.Writer, gpus []dra.GPU) error {
	devices := make([]any, 0, len(gpus))
	for _, g := range gpus {
		devices = append(devices, dra.Device(g))
	}
	out, err := yaml.Marshal(map[string]any{"driver": dra.DriverName, "devices": devices})
	if err != nil {
		return fmt.Errorf("print devices: %w", err)
	}
	_, err = w.Write(out)
	return err
}

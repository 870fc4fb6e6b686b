package main

import (
	"os"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
)

func newKubectlCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "kubectl [--data-dir DIR] [kubectl args...]",
		Short: "Run kubectl (embedded) against this Strata cluster",
		// kubectl parses its own flags; we only take --data-dir out.
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			dataDir, rest := takeDataDir(args, defaultDataDir())
			if !hasKubeconfigFlag(rest) {
				path, err := kubeconfigPath("", dataDir)
				if err != nil {
					return err
				}
				os.Setenv("KUBECONFIG", path)
			}
			// kubectl reads its arguments from os.Args (plugins included).
			os.Args = append([]string{"kubectl"}, rest...)
			kubectl := kubectlcmd.NewDefaultKubectlCommand()
			os.Exit(cli.Run(kubectl))
			return nil
		},
	}
}

func takeDataDir(args []string, def string) (string, []string) {
	dir := def
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--data-dir" && i+1 < len(args):
			dir = args[i+1]
			i++
		case len(a) > len("--data-dir=") && a[:len("--data-dir=")] == "--data-dir=":
			dir = a[len("--data-dir="):]
		default:
			rest = append(rest, a)
		}
	}
	return dir, rest
}

func hasKubeconfigFlag(args []string) bool {
	for _, a := range args {
		if a == "--kubeconfig" || len(a) > 13 && a[:13] == "--kubeconfig=" {
			return true
		}
	}
	return false
}

package main

import (
	"os"

	"github.com/strata-dev/strata/pkg/layout"
)

// defaultDataDir honours STRATA_DATA_DIR so every subcommand finds the
// same cluster without repeating --data-dir.
func defaultDataDir() string {
	if d := os.Getenv(layout.EnvDataDir); d != "" {
		return d
	}
	return layout.DefaultDataDir
}

// kubeconfigPath is the one rule by which the client subcommands find a
// cluster, as kubectl users expect: --kubeconfig, then $KUBECONFIG, then
// the local server's admin kubeconfig under --data-dir.
func kubeconfigPath(flagValue, dataDir string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if env := os.Getenv("KUBECONFIG"); env != "" {
		return env, nil
	}
	l, err := layout.New(dataDir)
	if err != nil {
		return "", err
	}
	return l.AdminKubeconfig(), nil
}

// strata-runc is the runc that containerd runs for Strata's nodes when the
// DRA GPU driver is on (containerd's runc option BinaryName). containerd
// 1.6 does not apply CDI devices, so this wrapper injects the devices and
// environment the driver prepared for a container into its OCI bundle,
// then executes the real runc with the same arguments. It is small and
// static because runc is started for every container operation.
//
// containerd passes its environment down to the shim and to runc; the
// server sets:
//
//	STRATA_RUNC_POD_DIR  the driver's per-pod device files (required)
//	STRATA_RUNC_CDI_DIR  the CDI spec directory
//	STRATA_RUNC_REAL     the real runc (default /usr/sbin/runc, else PATH)
package main

import (
	"github.com/strata-dev/strata/pkg/layout"
	"os"

	"github.com/strata-dev/strata/pkg/dra/cdiwrap"
)

func main() {
	var args []string
	if v := os.Getenv(layout.EnvRuncPodDir); v != "" {
		args = append(args, "--pod-dir", v)
	}
	if v := os.Getenv(layout.EnvRuncCDIDir); v != "" {
		args = append(args, "--cdi-dir", v)
	}
	if v := os.Getenv(layout.EnvRuncReal); v != "" {
		args = append(args, "--runc", v)
	}
	args = append(args, "--")
	os.Exit(cdiwrap.Main(append(args, os.Args[1:]...), os.Stderr))
}

package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/strata-dev/strata/pkg/dra"
)

// newGPUDriverCommand runs the DRA GPU driver on its own, as the Helm
// chart's DaemonSet does on every GPU node of someone else's cluster; in
// strata server the same driver is a component of the node.
func newGPUDriverCommand() *cobra.Command {
	var (
		kubeconfig, nodeName, kubeletDir string
		cfg                              dra.Config
	)
	cmd := &cobra.Command{
		Use:   "driver",
		Short: "Run the DRA GPU driver for this node (the Helm chart runs it as a DaemonSet)",
		Long: `Runs the DRA GPU driver gpu.strata.dev for one node: it registers with the
node's kubelet (under --kubelet-dir), publishes the node's GPUs in a
ResourceSlice and prepares claims by writing CDI specs into --cdi-dir, which
the node's container runtime must read (containerd 2: enable_cdi, with the
directory in cdi_spec_dirs). In a pod it uses the pod's service account;
the paths are the node's, mounted at the same place.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodeName == "" {
				return fmt.Errorf("--node-name is empty: pass it, or set NODE_NAME (in a pod, from spec.nodeName)")
			}
			rc, err := driverConfig(kubeconfig)
			if err != nil {
				return err
			}
			if cfg.Client, err = kubernetes.NewForConfig(rc); err != nil {
				return err
			}
			cfg.NodeName, cfg.Inventory.NodeName = nodeName, nodeName
			cfg.RegistrarDir = filepath.Join(kubeletDir, "plugins_registry")
			cfg.PluginDataDir = filepath.Join(kubeletDir, "plugins", dra.DriverName)
			ctx, stop := signalContext()
			defer stop()
			d, err := dra.Start(ctx, cfg)
			if err != nil {
				return err
			}
			klog.InfoS("GPU driver serving", "node", nodeName, "driver", dra.DriverName, "cdiDir", cfg.CDIDir)
			<-ctx.Done()
			d.Stop()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig (default: the pod's service account, then $KUBECONFIG)")
	f.StringVar(&nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default: $NODE_NAME)")
	f.StringVar(&kubeletDir, "kubelet-dir", "/var/lib/kubelet", "the kubelet's root directory on this node")
	f.StringVar(&cfg.CDIDir, "cdi-dir", dra.DefaultCDIDir, "where the container runtime reads CDI specs")
	f.StringVar(&cfg.StateDir, "state-dir", "/var/lib/strata-gpu-driver", "where prepared claims are kept across restarts")
	f.StringVar(&cfg.Inventory.Backend, "gpu-backend", "auto", "auto, nvml or simulated")
	f.StringVar(&cfg.Inventory.Simulated, "simulated-gpus", "", "simulated inventory, e.g. 4xA100-80GB")
	return cmd
}

// driverConfig is the in-cluster config in a pod, else the kubeconfig.
func driverConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		if rc, err := rest.InClusterConfig(); err == nil {
			return rc, nil
		}
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	if kubeconfig == "" {
		return nil, fmt.Errorf("no cluster to talk to: run in a pod, or pass --kubeconfig")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return rc, nil
}

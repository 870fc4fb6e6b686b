package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/pkg/server"
)

func newAgentCommand() *cobra.Command {
	cfg := server.AgentDefaults()
	cmd := &cobra.Command{
		Use:   "agent --server https://HOST:6443 --token TOKEN",
		Short: "Join a Strata server as a node: containerd, kubelet, kube-proxy, pod network (no control plane)",
		Long: `agent runs the node parts of a Strata server on this machine and joins
the server named by --server with a token from ` + "`strata token create`" + `.
It checks the server's CA against the token's pin before it sends anything,
gets the kubelet's certificates through the upstream TLS bootstrap, and
takes a share of the cluster's pod range. The server must run with
--node-ip so that nodes can reach it and its pods.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if env := os.Getenv("STRATA_DATA_DIR"); env != "" && !cmd.Flags().Changed("data-dir") {
				cfg.DataDir = env
			}
			if env := os.Getenv("STRATA_TOKEN"); env != "" && !cmd.Flags().Changed("token") {
				cfg.Token = env
			}
			ctx, stop := signalContext()
			defer stop()
			return server.RunAgent(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Server, "server", "", "the server's API address, https://HOST:PORT")
	f.StringVar(&cfg.Token, "token", "", "join string from `strata token create` (strata1:sha256:<CA hash>:<token>); env STRATA_TOKEN")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the node's state (containerd, kubelet, certificates); env STRATA_DATA_DIR")
	f.StringVar(&cfg.NodeName, "node-name", cfg.NodeName, "name of this node")
	f.StringVar(&cfg.NodeIP, "node-ip", "", "this node's address (default: the address this machine reaches the server from)")
	f.StringToStringVar(&cfg.Labels, "labels", nil, "labels of the Node, k=v,...")
	f.IntVar(&cfg.KubeletPort, "kubelet-port", cfg.KubeletPort, "kubelet API port on the node address")
	f.StringVar(&cfg.VXLAN, "vxlan", cfg.VXLAN, "when pod traffic to another node is tunnelled (VXLAN, UDP 8472): auto (nodes not on a shared link), always, never (host-gw routes only)")
	f.StringVar(&cfg.Bridge, "bridge", cfg.Bridge, "name of the pod network bridge")
	f.StringVar(&cfg.Containerd, "containerd", "", "containerd 2.x binary (default: the containerd built next to strata)")
	f.StringVar(&cfg.CNIBinDir, "cni-bin-dir", "", "CNI plugin directory (default: /usr/lib/cni, then /opt/cni/bin)")
	f.StringVar(&cfg.CgroupRoot, "cgroup-root", "", "parent cgroup of the node's pods (default /); set when several nodes share one machine")
	f.StringVar(&cfg.PodLogsDir, "pod-logs-dir", "", "where container logs go (default /var/log/pods); set when several nodes share one machine")
	f.StringVar(&cfg.GPUBackend, "gpu-backend", cfg.GPUBackend, "GPU inventory of the node's DRA driver: auto, nvml or simulated")
	f.StringVar(&cfg.SimulatedGPUs, "simulated-gpus", "", "simulated GPUs for machines without any, e.g. 4xA100-80GB")
	f.StringVar(&cfg.SimulatedGPUsFile, "simulated-gpus-file", "", "file with a simulated GPU inventory")
	f.DurationVar(&cfg.JoinBackoffMax, "join-backoff-max", cfg.JoinBackoffMax, "longest wait between attempts to join the server")
	f.IntVarP(&cfg.Verbosity, "v", "v", 0, "log verbosity of the components in DATA_DIR/logs/strata.log")
	return cmd
}

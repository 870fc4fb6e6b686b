package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/strata-dev/strata/pkg/controlplane"
	"github.com/strata-dev/strata/pkg/server"
	"github.com/strata-dev/strata/pkg/supervise"
)

func newServerCommand() *cobra.Command {
	cfg := server.Defaults()
	cfg.DataDir = defaultDataDir()
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a complete single-node Kubernetes cluster",
		Long: `Runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, an OCI
registry, cluster DNS and (unless --disable-agent) the node: containerd,
kubelet and kube-proxy. State lives under --data-dir; the admin kubeconfig is
DATA_DIR/admin.kubeconfig. Stop with SIGTERM or Ctrl-C; start again on the same
data dir to get the same cluster back.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("gc-percent") && os.Getenv("GOGC") != "" {
				cfg.GCPercent = 0 // the environment's GOGC stays
			}
			cfg.Faults = os.Getenv(supervise.FaultsEnv)
			ctx, stop := signalContext()
			defer stop()
			return server.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the cluster state (etcd, certificates, images); env STRATA_DATA_DIR")
	f.BoolVar(&cfg.DisableAgent, "disable-agent", false, "run the control plane only, without containerd, kubelet and kube-proxy")
	f.BoolVar(&cfg.Vanilla, "vanilla", false, "run upstream Kubernetes only, without Strata's extensions (webhooks, CRDs, Functions, GPU driver and scheduler plugins, wasm): a stand-in for an existing cluster")
	f.StringVar(&cfg.BindAddress, "bind-address", cfg.BindAddress, "address kube-apiserver listens on")
	f.IntVar(&cfg.APIPort, "https-port", cfg.APIPort, "kube-apiserver port")
	f.IntVar(&cfg.EtcdPort, "etcd-port", cfg.EtcdPort, "embedded etcd client port on loopback (the peer port is the next one)")
	f.IntVar(&cfg.RegistryPort, "registry-port", cfg.RegistryPort, "embedded OCI registry port on loopback; images are named localhost:PORT/...")
	f.IntVar(&cfg.KubeletPort, "kubelet-port", cfg.KubeletPort, "kubelet API port on the node address")
	f.IntVar(&cfg.DNSPort, "dns-port", cfg.DNSPort, "cluster DNS port on the node address (the kube-dns Service is always port 53)")
	f.StringVar(&cfg.ClusterCIDR, "cluster-cidr", cfg.ClusterCIDR, "pod address range; each node gets a share (--node-cidr-mask-size), and the server's node the first, whose first address is its bridge address")
	f.StringVar(&cfg.ServiceCIDR, "service-cidr", cfg.ServiceCIDR, "Service ClusterIP range")
	f.StringVar(&cfg.ClusterDomain, "cluster-domain", cfg.ClusterDomain, "DNS domain of Services and Pods")
	f.StringVar(&cfg.NodeName, "node-name", cfg.NodeName, "name of this node")
	f.StringVar(&cfg.NodeIP, "node-ip", "", "this node's address on the network other nodes share; API server, registry pulls, cluster DNS and the kubelet are reached there (default: the pod bridge's address, for a single node; agents need it set)")
	f.IntVar(&cfg.NodeCIDRMaskSize, "node-cidr-mask-size", cfg.NodeCIDRMaskSize, "prefix length of each node's pod range inside --cluster-cidr")
	f.StringVar(&cfg.VXLAN, "vxlan", cfg.VXLAN, "when pod traffic to another node is tunnelled (VXLAN, UDP 8472): auto (nodes not on a shared link), always, never (host-gw routes only)")
	f.DurationVar(&cfg.NodeMonitorGrace, "node-monitor-grace", cfg.NodeMonitorGrace, "how long a node that stopped reporting stays Ready (kube-controller-manager --node-monitor-grace-period)")
	f.DurationVar(&cfg.NodeGrace, "node-grace", cfg.NodeGrace, "how long the pods of a NotReady or unreachable node stay bound to it before they are evicted and recreated elsewhere; short suits stateless services, long lets an edge node ride out a network outage without its pods being rescheduled")
	f.StringVar(&cfg.Bridge, "bridge", cfg.Bridge, "name of the pod network bridge")
	f.StringVar(&cfg.Containerd, "containerd", "", "containerd 2.x binary (default: the containerd built next to strata)")
	f.StringVar(&cfg.CNIBinDir, "cni-bin-dir", "", "CNI plugin directory (default: /usr/lib/cni, then /opt/cni/bin)")
	f.StringVar(&cfg.PauseBinary, "pause-binary", "", "static binary for the pod sandbox image (default: strata-pause next to strata)")
	f.StringSliceVar(&cfg.TLSSANs, "tls-san", nil, "extra names or addresses for the API server certificate")
	f.BoolVar(&cfg.Profiling, "profiling", false, "serve /debug/pprof on the API server to cluster admins (profiles cover the whole strata process: etcd, API server, scheduler, controllers, node)")
	f.StringVar(&cfg.FeatureGates, "feature-gates", "", "Kubernetes feature gates for every component, e.g. DRAPartitionableDevices=true,NominatedNodeNameForExpectation=true; applied after Strata's own ("+controlplane.DefaultFeatureGates+")")
	f.StringVar(&cfg.PodSecurity, "pod-security", cfg.PodSecurity, "Pod Security level enforced in namespaces without pod-security.kubernetes.io labels: restricted, baseline or privileged (system namespaces are exempt)")
	f.IntVar(&cfg.WebhookPort, "webhook-port", cfg.WebhookPort, "port on loopback where the API server reaches Strata's admission webhooks")
	f.StringVar(&cfg.UnmatchedImages, "unmatched-images", cfg.UnmatchedImages, "images that no ClusterImagePolicy covers are: deny (refused), warn (admitted with a warning) or allow")
	f.DurationVar(&cfg.ImageVerifyTimeout, "image-verify-timeout", cfg.ImageVerifyTimeout, "deadline for resolving and verifying the images of one admission request (below the webhook timeout of 10s)")
	f.DurationVar(&cfg.ImageCacheTTL, "image-cache-ttl", cfg.ImageCacheTTL, "how long a verified digest stays admitted without checking the registry again (also the delay before a deleted signature takes effect)")
	f.IntVar(&cfg.GatewayPort, "gateway-port", cfg.GatewayPort, "port of the functions' HTTP gateway, on --bind-address")
	f.StringVar(&cfg.FunctionDomain, "function-domain", cfg.FunctionDomain, "functions answer at http://<function>.<namespace>.DOMAIN:<gateway-port>/ (the default, localhost, resolves to loopback)")
	addGatewaySecurityFlags(f, &cfg.GatewaySecurity)
	f.StringVar(&cfg.MinFreeDisk, "min-free-disk", cfg.MinFreeDisk, "free space of the data dir's file system below which the API server and the registry refuse writes (507) and /readyz fails, so etcd never meets a full disk; 0 turns this off")
	f.IntVar(&cfg.MetricsPort, "metrics-port", cfg.MetricsPort, "port on loopback serving Strata's Prometheus metrics at https://127.0.0.1:PORT/metrics (a client certificate or bearer token with get on /metrics)")
	f.StringVar(&cfg.GPUBackend, "gpu-backend", cfg.GPUBackend, "GPU inventory of the node's DRA driver: auto (NVML when NVIDIA's library is present, else --simulated-gpus, else no GPUs), nvml or simulated")
	f.StringVar(&cfg.SimulatedGPUs, "simulated-gpus", "", "simulated GPUs for machines without any, e.g. 4xA100-80GB or 2xA100-80GB,1xT4-16GB")
	f.StringVar(&cfg.SimulatedGPUsFile, "simulated-gpus-file", "", "file with a simulated GPU inventory (same syntax, one entry per line, # comments)")
	f.IntVar(&cfg.GCPercent, "gc-percent", cfg.GCPercent, "Go GC target of the server process, as GOGC: the heap grows this many percent over live data between collections; higher spends less CPU on GC and more memory. 0 keeps GOGC from the environment, which is also used when this flag is not given")
	f.StringVar(&cfg.MemoryLimit, "memory-limit", "", "soft memory limit of the server process, as GOMEMLIMIT (e.g. 1Gi): the GC works harder near it; empty: none, or GOMEMLIMIT from the environment")
	f.IntVarP(&cfg.Verbosity, "v", "v", 0, "log verbosity of the components in DATA_DIR/logs/strata.log")
	return cmd
}

// signalContext ends on the first SIGTERM or SIGINT; a second one exits at
// once for the impatient.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-ch
		cancel()
		<-ch
		fmt.Fprintln(os.Stderr, "strata: second signal, exiting now")
		os.Exit(1)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

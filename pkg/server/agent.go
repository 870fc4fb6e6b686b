package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/strata-dev/strata/pkg/fileutil"
	"github.com/strata-dev/strata/pkg/jointoken"
	"github.com/strata-dev/strata/pkg/layout"
	"github.com/strata-dev/strata/pkg/node"
	"github.com/strata-dev/strata/pkg/registry"
	"github.com/strata-dev/strata/pkg/supervise"
)

// AgentConfig is `strata agent`'s configuration; flags map onto it.
type AgentConfig struct {
	DataDir string
	// Server is the API server's URL, https://HOST:PORT.
	Server string
	// Token is the join string `strata token create` printed.
	Token    string
	NodeName string
	// NodeIP is the agent's address; "" picks the one this machine uses
	// to reach the server.
	NodeIP string
	// Labels are added to the Node when it registers.
	Labels      map[string]string
	KubeletPort int
	// VXLAN: see Config.VXLAN.
	VXLAN      string
	Bridge     string
	Containerd string
	CNIBinDir  string
	// CgroupRoot is the parent cgroup of the node's pods ("" is /).
	CgroupRoot string
	// PodLogsDir is where container logs go ("" is /var/log/pods).
	PodLogsDir string
	GPUBackend string
	// SimulatedGPUs / SimulatedGPUsFile give a simulated GPU inventory.
	SimulatedGPUs, SimulatedGPUsFile string
	Verbosity                        int
	// JoinBackoffMax caps the wait between join attempts.
	JoinBackoffMax time.Duration
	Out            io.Writer
}

// AgentDefaults returns the agent's configuration when no flag is given.
func AgentDefaults() AgentConfig {
	host, _ := os.Hostname()
	return AgentConfig{DataDir: layout.DefaultDataDir, NodeName: host, KubeletPort: 10250, Bridge: "strata0", VXLAN: node.VXLANAuto,
		GPUBackend: "auto", JoinBackoffMax: 30 * time.Second, Out: os.Stderr}
}

// Validate checks the flags before anything starts.
func (c *AgentConfig) Validate() (jointoken.Join, error) {
	if c.Server == "" || c.Token == "" {
		return jointoken.Join{}, errors.New("--server and --token are required: run `strata token create` on the server and pass what it printed, e.g. strata agent --server https://10.0.0.1:6443 --token strata1:sha256:...")
	}
	if jointoken.ServerHost(c.Server) == "" || !strings.HasPrefix(c.Server, "https://") {
		return jointoken.Join{}, fmt.Errorf("--server %q: give the server's API address as https://HOST:PORT", c.Server)
	}
	j, err := jointoken.Parse(c.Token)
	if err != nil {
		return j, fmt.Errorf("--token: %w", err)
	}
	if errs := validation.IsDNS1123Subdomain(c.NodeName); len(errs) > 0 {
		return j, fmt.Errorf("--node-name %q: %s", c.NodeName, strings.Join(errs, "; "))
	}
	if c.NodeIP != "" {
		if ip := net.ParseIP(c.NodeIP); ip == nil || ip.To4() == nil {
			return j, fmt.Errorf("--node-ip %q is not an IPv4 address", c.NodeIP)
		}
	}
	if err := node.ValidateVXLANMode(c.VXLAN); err != nil {
		return j, err
	}
	if c.KubeletPort < 1 || c.KubeletPort > 65535 {
		return j, fmt.Errorf("--kubelet-port %d is out of range: use a port from 1 to 65535", c.KubeletPort)
	}
	for k, v := range c.Labels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return j, fmt.Errorf("--labels: key %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return j, fmt.Errorf("--labels: value %q of %s: %s", v, k, strings.Join(errs, "; "))
		}
	}
	// Zero would retry a refused join in a tight loop.
	if c.JoinBackoffMax < time.Second {
		return j, fmt.Errorf("--join-backoff-max %s: use at least 1s, e.g. 30s", c.JoinBackoffMax)
	}
	if c.PodLogsDir != "" && !filepath.IsAbs(c.PodLogsDir) {
		return j, fmt.Errorf("--pod-logs-dir %q is relative: give an absolute path, e.g. /var/log/pods-agent2", c.PodLogsDir)
	}
	switch c.GPUBackend {
	case "auto", "nvml", "simulated":
	default:
		return j, fmt.Errorf("--gpu-backend %q: use auto, nvml or simulated", c.GPUBackend)
	}
	l, err := layout.New(c.DataDir)
	if err != nil {
		return j, fmt.Errorf("--data-dir: %w", err)
	}
	c.DataDir = l.DataDir
	return j, nil
}

// Names of the agent's own components (the node's are in node.go).
const (
	compJoinServer = "join"
	compPodNetwork = "pod-network"
)

// agent is what the components of one `strata agent` share.
type agent struct {
	cfg  AgentConfig
	join jointoken.Join
	nodeHost

	// Set by the join component before it reports ready.
	cluster jointoken.AgentConfig
	client  kubernetes.Interface
}

// RunAgent joins a server and runs a node until ctx ends: containerd, the
// kubelet (its credentials from the join token through the TLS
// bootstrap), kube-proxy, the pod network and routes to the other nodes,
// and on a machine with GPUs the DRA driver.
func RunAgent(ctx context.Context, cfg AgentConfig) error {
	j, err := cfg.Validate()
	if err != nil {
		return err
	}
	a := &agent{cfg: cfg, join: j, nodeHost: nodeHost{layout: layout.Layout{DataDir: cfg.DataDir}, start: time.Now(), out: cfg.Out}}
	lock, err := checkDataDir(a.layout)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := setupLogging(a.layout, cfg.Verbosity); err != nil {
		return err
	}
	defer klog.Flush()
	if err := a.preflight(ctx); err != nil {
		return err
	}
	g := &supervise.Group{StopTimeout: stopTimeout, Report: a.say,
		OnReady:   func(name string) { klog.InfoS("Component ready", "component", name) },
		OnStopped: func(name string) { klog.InfoS("Component stopped", "component", name) },
	}
	g.Add(a.components()...)
	go func() {
		<-ctx.Done()
		a.say("stopping")
	}()
	err = g.Run(ctx)
	if cerr := node.RemovePodCgroups(node.CgroupRoot, cfg.CgroupRoot); cerr != nil {
		klog.ErrorS(cerr, "Remove pod cgroups")
	}
	if cfg.CgroupRoot != "" && cfg.CgroupRoot != "/" {
		if cerr := node.RemoveCgroup(cfg.CgroupRoot); cerr != nil {
			klog.ErrorS(cerr, "Remove the node's cgroup root", "cgroupRoot", cfg.CgroupRoot)
		}
	}
	if rerr := node.RemoveRunDir(a.layout.RunDir(), a.layout.CRISandboxesDir()); rerr != nil {
		klog.ErrorS(rerr, "Remove the run dir")
	}
	a.say("stopped")
	return err
}

// preflight finds the binaries and the GPUs and picks the node address.
func (a *agent) preflight(ctx context.Context) error {
	cfg := &a.cfg
	var err error
	b := &a.bins
	if b.containerd, err = node.FindContainerd(cfg.Containerd, besideStrata("containerd")); err != nil {
		return err
	}
	if b.cniDir, err = node.FindCNIBinDir(candidates(cfg.CNIBinDir, "/usr/lib/cni", "/opt/cni/bin")...); err != nil {
		return err
	}
	b.wasmShim = besideStrata("containerd-shim-strata-wasm-v1")
	if a.gpus, err = gpuInventory(ctx, gpuFlags{cfg.GPUBackend, cfg.SimulatedGPUs, cfg.SimulatedGPUsFile, cfg.NodeName}); err != nil {
		return err
	}
	if cfg.NodeIP != "" {
		a.nodeIP, err = localAddress(cfg.NodeIP)
	} else {
		a.nodeIP, err = sourceAddress(jointoken.ServerHost(cfg.Server))
	}
	if err != nil {
		return err
	}
	if cfg.CgroupRoot != "" {
		if err := node.EnsureCgroup(cfg.CgroupRoot); err != nil {
			return err
		}
	}
	// The pod range comes from the server once the node registered.
	a.network = &node.Network{Bridge: cfg.Bridge, ConfDir: a.layout.CNIConfDir(), IPAMDir: a.layout.CNIIPAMDir()}
	return checkPorts([]portUse{
		{"tcp", net.JoinHostPort(a.nodeIP.String(), fmt.Sprint(cfg.KubeletPort)), "kubelet", "--kubelet-port"},
		{"tcp", loopback(kubeletHealthzPort), "kubelet healthz", ""},
		{"tcp", loopback(proxyHealthzPort), "kube-proxy healthz", ""},
		{"tcp", loopback(proxyMetricsPort), "kube-proxy metrics", ""},
	})
}

// sourceAddress is the address this machine sends from to reach host (a
// UDP "connection" sends nothing).
func sourceAddress(host string) (net.IP, error) {
	conn, err := net.Dial("udp", net.JoinHostPort(host, "6443"))
	if err != nil {
		return nil, fmt.Errorf("find the address to reach the server %s from: %w; pass --node-ip", host, err)
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).IP.To4(), nil
}

func (a *agent) kubeletKubeconfig() string   { return a.layout.Kubeconfig("kubelet") }
func (a *agent) bootstrapKubeconfig() string { return a.layout.Kubeconfig("bootstrap") }
func (a *agent) caFile() string              { return a.layout.CAFile() }

// components is the agent's graph: join first, then the node.
func (a *agent) components() []supervise.Component {
	seeLog := "see " + a.layout.StrataLog()
	var ctrd *node.Containerd
	cs := []supervise.Component{
		supervise.Task(compJoinServer, nil, a.joinServer),
		{Name: compContainerd, Requires: []string{compJoinServer}, Policy: supervise.Restart, Hint: "see " + a.layout.ContainerdLog(),
			Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
				if ctrd == nil {
					ctrd = a.containerd(a.cluster.SandboxImage)
				}
				if err := a.writeRegistryHosts(ctrd); err != nil {
					return err
				}
				return ctrd.Run(ctx, a.layout.ContainerdConfig(), func() {
					a.say("containerd ready")
					ready()
				})
			})},
		{Name: compKubelet, Requires: []string{compContainerd}, Hint: seeLog, Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
			labels := nodeLabels(a.bins.wasmShim)
			for k, v := range a.cfg.Labels {
				if labels == nil {
					labels = map[string]string{}
				}
				labels[k] = v
			}
			return a.runNodeKubelet(ctx, &node.KubeletConfig{
				NodeName:            a.cfg.NodeName,
				NodeIP:              a.nodeIP.String(),
				RootDir:             a.layout.KubeletDir(),
				CertDir:             a.layout.KubeletCertDir(),
				Kubeconfig:          a.kubeletKubeconfig(),
				BootstrapKubeconfig: a.bootstrapKubeconfig(),
				ClientCAFile:        a.caFile(),
				RuntimeEndpoint:     ctrd.Endpoint(),
				ClusterDNS:          a.cluster.ClusterDNS,
				ClusterDomain:       a.cluster.ClusterDomain,
				Port:                int32(a.cfg.KubeletPort),
				NodeLabels:          labels,
				CgroupRoot:          a.cfg.CgroupRoot,
				PodLogsDir:          a.cfg.PodLogsDir,
			}, ctrd, a.client, ready)
		})},
		// The bridge and CNI config wait for the node's pod range, which
		// node IPAM gives once the kubelet registered; until then the node
		// reports its network not ready.
		{Name: compPodNetwork, Requires: []string{compKubelet}, Hint: seeLog, Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
			cidr, err := node.WaitPodCIDR(ctx, a.client, a.cfg.NodeName)
			if err != nil {
				return err
			}
			a.network.PodCIDR, a.network.ClusterCIDR = cidr, a.cluster.ClusterCIDR
			if _, err := a.network.EnsureBridge(); err != nil {
				return err
			}
			if err := a.network.EnsureMasquerade(); err != nil {
				return err
			}
			if err := a.network.WriteCNIConfig(); err != nil {
				return err
			}
			a.say("pod network %s on %s", cidr, a.cfg.Bridge)
			ready()
			<-ctx.Done()
			return nil
		})},
		{Name: compRoutes, Requires: []string{compJoinServer}, Hint: seeLog, Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
			return (&node.Routes{Client: a.client, NodeName: a.cfg.NodeName, VXLAN: a.cfg.VXLAN}).Run(ctx, ready)
		})},
		{Name: compProxy, Requires: []string{compJoinServer}, Hint: seeLog, Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
			ready()
			return node.RunProxy(ctx, &node.ProxyConfig{
				Kubeconfig: a.kubeletKubeconfig(), NodeName: a.cfg.NodeName, ClusterCIDR: a.cluster.ClusterCIDR,
				HealthzPort: proxyHealthzPort, MetricsPort: proxyMetricsPort,
			})
		})},
	}
	if len(a.gpus) > 0 {
		cs = append(cs, supervise.Component{Name: compGPUDriver, Requires: []string{compKubelet}, Hint: seeLog,
			Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
				return a.runGPUDriver(ctx, ready, a.cfg.NodeName, a.kubeletKubeconfig())
			})})
	}
	return cs
}

// joinServer checks the server against the token's pin, gets the node's
// client certificate through the kubelet's TLS bootstrap and reads the
// cluster's agent configuration. It retries with backoff: the server may
// be down, or the token not created yet.
func (a *agent) joinServer(ctx context.Context) error {
	backoff := time.Second
	for attempt := 1; ; attempt++ {
		err := a.tryJoin(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.say("join %s failed (attempt %d): %v; retrying in %s", a.cfg.Server, attempt, err, backoff)
		klog.ErrorS(err, "Join", "server", a.cfg.Server, "attempt", attempt)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, a.cfg.JoinBackoffMax)
	}
}

func (a *agent) tryJoin(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	caPEM, err := a.join.Discover(dctx, a.cfg.Server)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(a.layout.PKIDir(), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(a.caFile(), caPEM, 0o644); err != nil {
		return fmt.Errorf("write the cluster CA: %w", err)
	}
	if err := a.join.WriteBootstrapKubeconfig(a.bootstrapKubeconfig(), a.cfg.Server, caPEM); err != nil {
		return err
	}
	if !fileutil.Exists(a.kubeletKubeconfig()) {
		// A node that joined before has its own certificate; the token
		// only matters the first time (and may have expired since).
		if err := a.join.CheckToken(dctx, a.cfg.Server, caPEM); err != nil {
			return err
		}
	}
	// Bounded: a token the server refuses fails fast, an approval that
	// never comes should not hang the agent silently.
	bctx, cancel2 := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel2()
	if err := node.BootstrapClientCert(bctx, a.kubeletKubeconfig(), a.bootstrapKubeconfig(), a.layout.KubeletCertDir(), a.cfg.NodeName); err != nil {
		return err
	}
	client, err := clientFor(a.kubeletKubeconfig())
	if err != nil {
		return err
	}
	cluster, err := jointoken.ReadAgentConfig(ctx, client)
	if err != nil {
		return err
	}
	a.client, a.cluster = client, cluster
	a.say("joined %s as node %s (%s)", a.cfg.Server, a.cfg.NodeName, a.nodeIP)
	return nil
}

// writeRegistryHosts points the cluster registry's image names at the
// server's TLS registry listener, where the agent pulls as its node.
func (a *agent) writeRegistryHosts(c *node.Containerd) error {
	if a.cluster.RegistryPull == "" {
		a.say("the server offers no registry pulls (start it with --node-ip): images named %s cannot be pulled here", a.cluster.RegistryName)
		return nil
	}
	return registry.WriteContainerdHostsTLS(c.RegistryHostsDir, a.cluster.RegistryName, "https://"+a.cluster.RegistryPull, a.caFile(), node.KubeletClientCert(a.layout.KubeletCertDir()))
}

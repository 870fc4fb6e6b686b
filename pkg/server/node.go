package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/strata-dev/strata/pkg/dns"
	"github.com/strata-dev/strata/pkg/dra"
	"github.com/strata-dev/strata/pkg/node"
	"github.com/strata-dev/strata/pkg/registry"
	"github.com/strata-dev/strata/pkg/signing"
	"github.com/strata-dev/strata/pkg/supervise"
	"github.com/strata-dev/strata/pkg/wasm"
)

// Names of the node's components.
const (
	compContainerd   = "containerd"
	compSandboxImage = "sandbox-image"
	compDNS          = "cluster-dns"
	compKubelet      = "kubelet"
	compProxy        = "kube-proxy"
	compGPUDriver    = "gpu-driver"
	compRoutes       = "pod-routes"
)

// podStopTimeout bounds stopping the node's pods when the kubelet stops.
const podStopTimeout = 5 * time.Second

// node is containerd, the sandbox image, cluster DNS, the kubelet,
// kube-proxy and, on a node with GPUs, the DRA driver.
func (s *server) node() []supervise.Component {
	seeLog := "see " + s.layout.StrataLog()
	ctrd := s.containerd(s.cfg.PauseImage())
	cs := []supervise.Component{
		// containerd is a child process that can die and come back without
		// losing state (containers live on in their shims): restarted.
		{Name: compContainerd, Policy: supervise.Restart, Hint: "see " + s.layout.ContainerdLog(),
			Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
				if err := s.writeNodeConfig(ctrd); err != nil {
					return err
				}
				return ctrd.Run(ctx, s.layout.ContainerdConfig(), func() {
					s.say("containerd ready; sandbox image %s", s.cfg.PauseImage())
					ready()
				})
			})},
		supervise.Task(compSandboxImage, []string{compRegistry, compSigningKey}, s.pushSandboxImage),
		{Name: compDNS, Requires: []string{compAPIServer}, Hint: seeLog, Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
			dnsIP, err := s.cp.DNSServiceIP()
			if err != nil {
				return err
			}
			client, err := clientFor(s.cp.SupervisorKubeconfig())
			if err != nil {
				return err
			}
			srv := &dns.Server{ListenIP: s.nodeIP, Port: s.cfg.DNSPort, ServiceIP: dnsIP, Domain: s.cfg.ClusterDomain,
				Upstreams: dns.HostUpstreams("/etc/resolv.conf"), Client: client}
			return srv.Run(ctx, ready)
		})},
		// Upstream's CSI volume plugin keeps its node info manager in a
		// package variable that every Init replaces, and three of
		// kube-controller-manager's controllers init the plugin too, with
		// no node name. The kubelet's Init must come last, or its CSINode
		// set-up fails and, 140 s later, exits the whole process
		// (klog.Fatalf in csi_plugin.go): hence its requirement on the
		// controller manager, which is ready once it built its controllers.
		{Name: compKubelet, Requires: []string{compContainerd, compSandboxImage, compDNS, compControllers}, Hint: seeLog,
			Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error { return s.runKubelet(ctx, ctrd, ready) })},
		{Name: compProxy, Requires: []string{compAPIServer}, Hint: seeLog, Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
			ready()
			return node.RunProxy(ctx, &node.ProxyConfig{
				Kubeconfig: s.cp.KubeProxyKubeconfig(), NodeName: s.cfg.NodeName, ClusterCIDR: s.cfg.ClusterCIDR,
				HealthzPort: proxyHealthzPort, MetricsPort: proxyMetricsPort,
			})
		})},
	}
	cs = append(cs, supervise.Component{Name: compRoutes, Requires: []string{compAPIServer}, Hint: seeLog,
		Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
			client, err := clientFor(s.cp.SupervisorKubeconfig())
			if err != nil {
				return err
			}
			return (&node.Routes{Client: client, NodeName: s.cfg.NodeName, VXLAN: s.cfg.VXLAN}).Run(ctx, ready)
		})})
	if len(s.gpus) > 0 {
		cs = append(cs, supervise.Component{Name: compGPUDriver, Requires: []string{compKubelet}, Hint: seeLog, Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
			return s.runGPUDriver(ctx, ready, s.cfg.NodeName, s.cp.KubeletKubeconfig())
		})})
	}
	return cs
}

// containerd is the node's containerd, configured from the layout.
func (h *nodeHost) containerd(sandboxImage string) *node.Containerd {
	l := h.layout
	c := &node.Containerd{
		Binary:           h.bins.containerd,
		Root:             l.ContainerdRoot(),
		State:            l.ContainerdState(),
		Socket:           l.ContainerdSocket(),
		SandboxImage:     sandboxImage,
		CNIBinDir:        h.bins.cniDir,
		CNIConfDir:       h.network.ConfDir,
		RegistryHostsDir: l.RegistryHostsDir(),
		LogFile:          l.ContainerdLog(),
		ConfDir:          l.ContainerdConfDir(),
		CDISpecDirs:      []string{l.CDIDir()},
		NRI:              node.NRI{Socket: l.NRISocket(), PluginDir: l.NRIPluginDir(), ConfigDir: l.NRIConfigDir()},
	}
	if h.bins.wasmShim != "" {
		c.AddWasmRuntime(h.bins.wasmShim, l.WasmShimCacheDir(), l.WasmShimSocketDir())
	}
	return c
}

// writeNodeConfig writes the CNI network and the registry hosts that
// containerd reads.
func (s *server) writeNodeConfig(c *node.Containerd) error {
	if err := s.network.WriteCNIConfig(); err != nil {
		return err
	}
	regURL := "http://" + loopback(s.cfg.RegistryPort)
	// Images may name the registry localhost:PORT or 127.0.0.1:PORT.
	for _, host := range []string{s.cfg.RegistryHost(), loopback(s.cfg.RegistryPort)} {
		if err := registry.WriteContainerdHosts(c.RegistryHostsDir, host, regURL); err != nil {
			return err
		}
	}
	return nil
}

// pushSandboxImage builds the pod sandbox image from strata-pause, pushes
// it into the embedded registry and signs it with the server's key, which
// the strata-system-images policy trusts.
func (s *server) pushSandboxImage(ctx context.Context) error {
	img, err := registry.Build(registry.ImageSpec{Binary: s.bins.pause, Entrypoint: []string{"/pause"}})
	if err != nil {
		return fmt.Errorf("sandbox image: %w", err)
	}
	// The registry listens on loopback under the same port as the name.
	ref := loopback(s.cfg.RegistryPort) + "/strata/pause:3.10"
	if _, err := registry.Push(img, ref); err != nil {
		return fmt.Errorf("sandbox image: %w", err)
	}
	if _, err := signing.Sign(ctx, ref, s.key.signer); err != nil {
		return fmt.Errorf("sign sandbox image: %w", err)
	}
	return nil
}

// runKubelet runs the kubelet, ready once the node reports Ready. When the
// kubelet has returned it stops the node's pods (so no container or shim
// outlives the server; the kubelet starts them again at the next start)
// and unmounts their volumes; containerd, which it requires, is still up.
func (s *server) runKubelet(ctx context.Context, ctrd *node.Containerd, ready func()) error {
	dnsIP, err := s.cp.DNSServiceIP()
	if err != nil {
		return err
	}
	admin, err := clientFor(s.cp.SupervisorKubeconfig())
	if err != nil {
		return err
	}
	// The server's node takes the first pod range, whose gateway its
	// bridge got in preflight.
	if err := node.ClaimPodCIDR(ctx, admin, s.cfg.NodeName, s.network.PodCIDR, nodeLabels(s.bins.wasmShim)); err != nil {
		return err
	}
	return s.runNodeKubelet(ctx, &node.KubeletConfig{
		NodeName:        s.cfg.NodeName,
		NodeIP:          s.nodeIP.String(),
		RootDir:         s.layout.KubeletDir(),
		CertDir:         s.layout.KubeletCertDir(),
		Kubeconfig:      s.cp.KubeletKubeconfig(),
		ClientCAFile:    s.cp.CAFile(),
		TLSCertFile:     s.cp.KubeletServingCert().CertFile,
		TLSKeyFile:      s.cp.KubeletServingCert().KeyFile,
		RuntimeEndpoint: ctrd.Endpoint(),
		ClusterDNS:      dnsIP.String(),
		ClusterDomain:   s.cfg.ClusterDomain,
		Port:            int32(s.cfg.KubeletPort),
		NodeLabels:      nodeLabels(s.bins.wasmShim),
	}, ctrd, admin, ready)
}

// runNodeKubelet runs the kubelet, ready once it serves and its Node
// exists. When the kubelet has returned it stops the node's pods (so no
// container or shim outlives the process; the kubelet starts them again at
// the next start) and unmounts their volumes; containerd, which it
// requires, is still up.
func (h *nodeHost) runNodeKubelet(ctx context.Context, kc *node.KubeletConfig, ctrd *node.Containerd, client kubernetes.Interface, ready func()) error {
	errc := make(chan error, 1)
	go func() { errc <- node.RunKubelet(ctx, kc) }()
	go func() {
		// Ready once the kubelet serves and its Node exists, which is what
		// the GPU driver's registration needs; the node's Ready condition
		// (CNI, runtime) is the cluster's business and only reported.
		if waitKubelet(ctx, client, kc.NodeName) != nil {
			return
		}
		ready()
		if waitNodeReady(ctx, client, kc.NodeName, h.start) == nil {
			h.say("node %s Ready", kc.NodeName)
		}
	}()
	err := <-errc
	h.stopPods(ctrd)
	return err
}

// stopPods stops every pod sandbox and unmounts the kubelet's volumes.
func (h *nodeHost) stopPods(ctrd *node.Containerd) {
	ctx, cancel := context.WithTimeout(context.Background(), podStopTimeout)
	defer cancel()
	if err := node.StopAllPods(ctx, ctrd.Endpoint()); err != nil {
		klog.ErrorS(err, "Stop pods")
	}
	if err := node.UnmountAll(h.layout.KubeletDir()); err != nil {
		klog.ErrorS(err, "Unmount kubelet volumes")
	}
}

// waitKubelet waits until the kubelet answers its health check and has
// registered its Node.
func waitKubelet(ctx context.Context, client kubernetes.Interface, name string) error {
	healthz := fmt.Sprintf("http://%s/healthz", loopback(kubeletHealthzPort))
	hc := &http.Client{Timeout: time.Second}
	return wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, healthz, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, nil
		}
		_, err = client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		return err == nil, nil
	})
}

// waitNodeReady waits for a Ready condition heartbeated after since: on a
// restart etcd still holds the previous run's Ready, which proves nothing.
// It logs each change of the condition, the first place to look when a
// node stays NotReady.
func waitNodeReady(ctx context.Context, client kubernetes.Interface, name string, since time.Time) error {
	var last string
	return wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range n.Status.Conditions {
			if c.Type != corev1.NodeReady {
				continue
			}
			if seen := string(c.Status) + c.Reason + c.Message; seen != last {
				last = seen
				klog.InfoS("Node Ready condition", "node", name, "status", c.Status, "reason", c.Reason, "message", c.Message, "heartbeat", c.LastHeartbeatTime)
			}
			if c.Status == corev1.ConditionTrue && c.LastHeartbeatTime.After(since) {
				return true, nil
			}
		}
		return false, nil
	})
}

// runGPUDriver runs the DRA GPU driver with the node's credentials.
func (h *nodeHost) runGPUDriver(ctx context.Context, ready func(), nodeName, kubeconfig string) error {
	nodeClient, err := clientFor(kubeconfig)
	if err != nil {
		return err
	}
	d, err := dra.Start(ctx, dra.Config{
		NodeName:      nodeName,
		Client:        nodeClient,
		RegistrarDir:  h.layout.PluginRegistryDir(),
		PluginDataDir: h.layout.PluginDir(dra.DriverName),
		CDIDir:        h.layout.CDIDir(),
		StateDir:      h.layout.DRAStateDir(),
		GPUs:          h.gpus,
	})
	if err != nil {
		return err
	}
	defer d.Stop()
	h.say("GPU driver: %d %s GPU(s) published as DeviceClass %s", len(h.gpus), h.gpus[0].Backend, dra.DriverName)
	ready()
	<-ctx.Done()
	return nil
}

// nodeLabels are the labels the kubelet registers the node with.
func nodeLabels(wasmShim string) map[string]string {
	if wasmShim == "" {
		return nil
	}
	return map[string]string{wasm.NodeLabel: "true"}
}

package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/strata-dev/strata/pkg/controlplane"
	"github.com/strata-dev/strata/pkg/dns"
	"github.com/strata-dev/strata/pkg/dra"
	"github.com/strata-dev/strata/pkg/node"
	"github.com/strata-dev/strata/pkg/registry"
	"github.com/strata-dev/strata/pkg/scheduler"
	"github.com/strata-dev/strata/pkg/signing"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// Fixed loopback ports of node components, as upstream numbers them.
const (
	kubeletHealthzPort = 10248
	proxyHealthzPort   = 10256
	proxyMetricsPort   = 10249
)

// Run starts every part of the server and blocks until ctx is done or a
// part fails; it then stops everything it started, in reverse order.
func Run(ctx context.Context, cfg Config) error {
	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(cfg.Out, "strata: [%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	lock, err := checkDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := setupLogging(cfg.path("logs"), cfg.Verbosity); err != nil {
		return err
	}
	defer klog.Flush()
	klog.InfoS("Go runtime", "gc", cfg.applyGC())

	// Everything that can be checked is checked before the first process
	// starts, so bad input never leaves anything running.
	net0 := &node.Network{Bridge: cfg.Bridge, ClusterCIDR: cfg.ClusterCIDR, ConfDir: cfg.path("cni", "net.d"), IPAMDir: cfg.path("cni", "ipam")}
	nodeIP, _, err := net0.Gateway()
	if err != nil {
		return err
	}
	var containerdBin, cniBinDir, pauseBin, wasmShim, runcWrapper string
	var gpus []dra.GPU
	if !cfg.DisableAgent {
		if containerdBin, err = node.FindContainerd(cfg.Containerd); err != nil {
			return err
		}
		if cniBinDir, err = node.FindCNIBinDir(candidates(cfg.CNIBinDir, "/usr/lib/cni", "/opt/cni/bin")...); err != nil {
			return err
		}
		if pauseBin, err = findPause(cfg.PauseBinary); err != nil {
			return err
		}
		wasmShim = findWasmShim()
		if gpus, err = gpuInventory(ctx, &cfg); err != nil {
			return err
		}
		if len(gpus) > 0 {
			if runcWrapper, err = findRuncWrapper(); err != nil {
				return err
			}
		}
	}
	bind := cfg.BindAddress
	ports := []portUse{
		{"tcp", net.JoinHostPort(bind, strconv.Itoa(cfg.APIPort)), "kube-apiserver", "--https-port"},
		{"tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.EtcdPort)), "etcd client", "--etcd-port"},
		{"tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.EtcdPort+1)), "etcd peer", "--etcd-port"},
		{"tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.RegistryPort)), "OCI registry", "--registry-port"},
		{"tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.WebhookPort)), "admission webhooks", "--webhook-port"},
		{"tcp", net.JoinHostPort(bind, strconv.Itoa(cfg.GatewayPort)), "function gateway", "--gateway-port"},
		{"tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.MetricsPort)), "metrics", "--metrics-port"},
	}
	if !cfg.DisableAgent {
		ports = append(ports,
			portUse{"tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(kubeletHealthzPort)), "kubelet healthz", ""},
			portUse{"tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(proxyHealthzPort)), "kube-proxy healthz", ""},
			portUse{"tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(proxyMetricsPort)), "kube-proxy metrics", ""},
		)
	}
	if err := checkPorts(ports); err != nil {
		return err
	}

	// Parts run under their own context so that shutdown can order them.
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fatal := make(chan error, 8)
	var wg sync.WaitGroup
	goRun := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(runCtx); err != nil && runCtx.Err() == nil {
				fatal <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}

	if !cfg.DisableAgent {
		if nodeIP, err = net0.EnsureBridge(); err != nil {
			return err
		}
		// The node's own ports are on the bridge address, which exists now.
		if err := checkPorts([]portUse{
			{"tcp", net.JoinHostPort(nodeIP.String(), strconv.Itoa(cfg.KubeletPort)), "kubelet", "--kubelet-port"},
			{"udp", net.JoinHostPort(nodeIP.String(), strconv.Itoa(cfg.DNSPort)), "cluster DNS", "--dns-port"},
			{"tcp", net.JoinHostPort(nodeIP.String(), strconv.Itoa(cfg.DNSPort)), "cluster DNS", "--dns-port"},
		}); err != nil {
			return err
		}
	}
	cp := &controlplane.Config{
		DataDir:            cfg.DataDir,
		BindAddress:        net.ParseIP(bind),
		AdvertiseAddress:   nodeIP,
		APIPort:            cfg.APIPort,
		EtcdPort:           cfg.EtcdPort,
		ServiceCIDR:        cfg.ServiceCIDR,
		ClusterCIDR:        cfg.ClusterCIDR,
		ClusterDomain:      cfg.ClusterDomain,
		NodeName:           cfg.NodeName,
		ExtraSANs:          cfg.TLSSANs,
		PodSecurityDefault: cfg.PodSecurity,
		Profiling:          cfg.Profiling,
		FeatureGates:       cfg.FeatureGates,
	}
	if err := cp.EnsurePKI(); err != nil {
		return fmt.Errorf("PKI: %w", err)
	}
	// Decrypting the key costs ~0.5 s of scrypt: do it beside etcd and the
	// API server; its users wait for it.
	signingKey := sync.OnceValues(func() (*systemKey, error) { return ensureSigningKey(&cfg) })
	go signingKey()

	// Deferred first so it runs last, after etcd and the registry are down.
	defer say("stopped")
	etcd, err := controlplane.StartEtcd(ctx, cp)
	if err != nil {
		return err
	}
	defer etcd.Close()
	say("etcd ready (%s)", cfg.path("etcd"))

	reg := &registry.Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.RegistryPort)), RootDir: cfg.path("registry"), LogOutput: klogWriter{}}
	if err := reg.Start(runCtx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = reg.Shutdown(sctx)
	}()

	goRun("kube-apiserver", func(ctx context.Context) error {
		return controlplane.RunAPIServer(ctx, cp, etcd.Endpoint(), nil)
	})

	// containerd and the pause image do not need the API: start them now.
	var ctrd *node.Containerd
	nodeReady := make(chan error, 1)
	// CDI specs are runtime state: gone at reboot, rewritten by the driver.
	cdiDir := filepath.Join("/run/strata", shortID(cfg.DataDir), "cdi")
	if !cfg.DisableAgent {
		ctrd = &node.Containerd{
			Binary:           containerdBin,
			Root:             cfg.path("containerd", "root"),
			State:            filepath.Join("/run/strata", shortID(cfg.DataDir), "containerd"),
			Socket:           filepath.Join("/run/strata", shortID(cfg.DataDir), "containerd.sock"),
			SandboxImage:     cfg.PauseImage(),
			CNIBinDir:        cniBinDir,
			CNIConfDir:       net0.ConfDir,
			RegistryHostsDir: cfg.path("containerd", "certs.d"),
			LogFile:          cfg.path("logs", "containerd.log"),
		}
		if runcWrapper != "" {
			ctrd.RuncBinary = runcWrapper
			ctrd.Env = append(ctrd.Env, "STRATA_RUNC_POD_DIR="+cfg.path("dra", "pods"), "STRATA_RUNC_CDI_DIR="+cdiDir)
		}
		if wasmShim != "" {
			ctrd.AddWasmRuntime(wasmShim, cfg.path("wasm-cache"), filepath.Join("/run/strata", shortID(cfg.DataDir), "s"))
		}
		go func() { nodeReady <- prepareNode(runCtx, &cfg, net0, ctrd, pauseBin, signingKey) }()
	}

	admin, err := waitAPI(ctx, cp.SupervisorKubeconfig(), cfg.path("logs", "strata.log"), fatal)
	if err != nil {
		cancel()
		return shutdown(say, ctrd, cfg.path("kubelet"), &wg, err)
	}
	say("API server ready at https://127.0.0.1:%d", cfg.APIPort)

	// The controller manager and scheduler need not wait for the image
	// policy webhook: on a first start there is no workload yet, and on a
	// restart the webhooks are registered already and fail closed until
	// they serve.
	kcmBuilt := make(chan struct{})
	goRun("kube-controller-manager", func(ctx context.Context) error {
		return controlplane.RunControllerManager(ctx, cp, nil, sync.OnceFunc(func() {
			klog.InfoS("kube-controller-manager built its controllers")
			close(kcmBuilt)
		}))
	})
	goRun("kube-scheduler", func(ctx context.Context) error {
		args, err := writeSchedulerConfig(&cfg, cp.SchedulerKubeconfig())
		if err != nil {
			return err
		}
		return controlplane.RunScheduler(ctx, cp, args, scheduler.Plugins()...)
	})

	if !cfg.DisableAgent {
		if err := <-nodeReady; err != nil {
			cancel()
			return shutdown(say, ctrd, cfg.path("kubelet"), &wg, err)
		}
		say("containerd ready; sandbox image %s", cfg.PauseImage())
		dnsIP, _ := cp.DNSServiceIP()
		supervisor, err := clientFor(cp.SupervisorKubeconfig())
		if err != nil {
			cancel()
			return shutdown(say, ctrd, cfg.path("kubelet"), &wg, err)
		}
		clusterDNS := &dns.Server{
			ListenIP: nodeIP, Port: cfg.DNSPort, ServiceIP: dnsIP, Domain: cfg.ClusterDomain,
			Upstreams: dns.HostUpstreams("/etc/resolv.conf"), Client: supervisor,
		}
		if err := clusterDNS.Start(runCtx); err != nil {
			cancel()
			return shutdown(say, ctrd, cfg.path("kubelet"), &wg, err)
		}
		// Upstream's CSI volume plugin keeps its node info manager in a
		// package variable that every Init replaces, and three of
		// kube-controller-manager's controllers init the plugin too, with
		// no node name. The kubelet's Init must come last, or its CSINode
		// set-up fails and, 140 s later, exits the whole process
		// (klog.Fatalf in csi_plugin.go).
		if err := waitClosed(ctx, kcmBuilt, fatal, 2*time.Minute, "kube-controller-manager did not build its controllers", cfg.path("logs", "strata.log")); err != nil {
			cancel()
			return shutdown(say, ctrd, cfg.path("kubelet"), &wg, err)
		}
		goRun("kubelet", func(ctx context.Context) error {
			return node.RunKubelet(ctx, &node.KubeletConfig{
				NodeName:        cfg.NodeName,
				NodeIP:          nodeIP.String(),
				RootDir:         cfg.path("kubelet"),
				Kubeconfig:      cp.KubeletKubeconfig(),
				ClientCAFile:    cp.CAFile(),
				TLSCertFile:     cp.KubeletServingCert().CertFile,
				TLSKeyFile:      cp.KubeletServingCert().KeyFile,
				RuntimeEndpoint: ctrd.Endpoint(),
				ClusterDNS:      dnsIP.String(),
				ClusterDomain:   cfg.ClusterDomain,
				Port:            int32(cfg.KubeletPort),
				NodeLabels:      nodeLabels(wasmShim),
			})
		})
		goRun("kube-proxy", func(ctx context.Context) error {
			return node.RunProxy(ctx, &node.ProxyConfig{
				Kubeconfig: cp.KubeProxyKubeconfig(), NodeName: cfg.NodeName, ClusterCIDR: cfg.ClusterCIDR,
				HealthzPort: proxyHealthzPort, MetricsPort: proxyMetricsPort,
			})
		})
		go func() {
			if err := waitNodeReady(runCtx, admin, cfg.NodeName, start); err != nil {
				return
			}
			say("node %s Ready", cfg.NodeName)
			if len(gpus) == 0 {
				return
			}
			nodeClient, err := clientFor(cp.KubeletKubeconfig())
			if err == nil {
				err = startGPUDriver(runCtx, &cfg, nodeClient, gpus, cdiDir)
			}
			if err != nil {
				fatal <- fmt.Errorf("GPU driver: %w", err)
				return
			}
			say("GPU driver: %d %s GPU(s) published as DeviceClass %s", len(gpus), gpus[0].Backend, dra.DriverName)
		}()
	}
	key, err := signingKey()
	var supervisorREST *rest.Config
	if err == nil {
		supervisorREST, err = restConfigFor(cp.SupervisorKubeconfig())
	}
	if err == nil {
		err = startImagePolicy(runCtx, &cfg, cp, supervisorREST, key.publicPEM)
	}
	if err == nil {
		err = ensureRuntimeClass(runCtx, admin)
	}
	if err == nil {
		err = startServerless(runCtx, &cfg, supervisorREST)
	}
	if err == nil {
		err = ensureGPUObjects(runCtx, admin)
	}
	if err != nil {
		cancel()
		return shutdown(say, ctrd, cfg.path("kubelet"), &wg, err)
	}
	say("image signature policy enforced (unmatched images: %s)", cfg.UnmatchedImages)
	if err := cp.PublishAdminKubeconfig(); err != nil {
		cancel()
		return shutdown(say, ctrd, cfg.path("kubelet"), &wg, err)
	}
	say("admin kubeconfig: %s (try: strata kubectl --data-dir %s get nodes)", cp.AdminKubeconfig(), cfg.DataDir)

	var runErr error
	select {
	case <-ctx.Done():
		say("stopping")
	case runErr = <-fatal:
	case err := <-etcd.Err():
		runErr = fmt.Errorf("etcd: %w", err)
	}
	cancel()
	return shutdown(say, ctrd, cfg.path("kubelet"), &wg, runErr)
}

// shutdown stops pods and containerd after the components' context is
// cancelled, so no container or shim outlives the server.
func shutdown(say func(string, ...any), ctrd *node.Containerd, kubeletDir string, wg *sync.WaitGroup, runErr error) error {
	if ctrd != nil {
		say("stopping pods and containerd")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if err := node.StopAllPods(ctx, ctrd.Endpoint()); err != nil {
			klog.ErrorS(err, "Stop pods")
		}
		cancel()
		ctrd.Stop()
	}
	// Components return when their context ends; do not wait forever for
	// one that does not (some upstream loops ignore cancellation).
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		klog.InfoS("Some components did not return within 3s of shutdown; exiting anyway")
	}
	if ctrd != nil {
		// After the kubelet returned, so it does not mount anything again.
		if err := node.UnmountAll(kubeletDir); err != nil {
			klog.ErrorS(err, "Unmount kubelet volumes")
		}
	}
	say("stopping etcd")
	return runErr
}

// prepareNode writes the CNI and registry configuration, starts containerd
// and pushes the sandbox image into the embedded registry.
func prepareNode(ctx context.Context, cfg *Config, n *node.Network, c *node.Containerd, pauseBin string, signingKey func() (*systemKey, error)) error {
	if err := n.WriteCNIConfig(); err != nil {
		return err
	}
	regURL := fmt.Sprintf("http://127.0.0.1:%d", cfg.RegistryPort)
	// Images may name the registry localhost:PORT or 127.0.0.1:PORT.
	for _, host := range []string{cfg.RegistryHost(), fmt.Sprintf("127.0.0.1:%d", cfg.RegistryPort)} {
		if err := registry.WriteContainerdHosts(c.RegistryHostsDir, host, regURL); err != nil {
			return err
		}
	}
	if err := c.Start(ctx, cfg.path("containerd", "config.toml")); err != nil {
		return err
	}
	img, err := registry.Build(registry.ImageSpec{Binary: pauseBin, Entrypoint: []string{"/pause"}})
	if err != nil {
		return fmt.Errorf("sandbox image: %w", err)
	}
	// The registry listens on loopback under the same port as the name.
	ref := fmt.Sprintf("127.0.0.1:%d/strata/pause:3.10", cfg.RegistryPort)
	if _, err := registry.Push(img, ref); err != nil {
		return fmt.Errorf("sandbox image: %w", err)
	}
	// System images are signed by the server's key, which the
	// strata-system-images policy trusts.
	key, err := signingKey()
	if err != nil {
		return err
	}
	if _, err := signing.Sign(ctx, ref, key.signer); err != nil {
		return fmt.Errorf("sign sandbox image: %w", err)
	}
	return nil
}

// waitClosed waits for ch to close; a part's failure, ctx's end or the
// timeout (with what, and where to look) ends the wait first.
func waitClosed(ctx context.Context, ch <-chan struct{}, fatal <-chan error, timeout time.Duration, what, logFile string) error {
	select {
	case <-ch:
		return nil
	case err := <-fatal:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(timeout):
		return fmt.Errorf("%s within %s; see %s", what, timeout, logFile)
	}
}

func waitAPI(ctx context.Context, kubeconfig, logFile string, fatal <-chan error) (kubernetes.Interface, error) {
	client, err := clientFor(kubeconfig)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(rctx)
		cancel()
		if err == nil && string(body) == "ok" {
			return client, nil
		}
		select {
		case err := <-fatal:
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("kube-apiserver not ready after 2m; see %s", logFile)
		}
	}
}

// waitNodeReady waits for a Ready condition heartbeated after since: on a
// restart etcd still holds the previous run's Ready, which proves nothing.
func waitNodeReady(ctx context.Context, client kubernetes.Interface, name string, since time.Time) error {
	return wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && c.LastHeartbeatTime.After(since) {
				return true, nil
			}
		}
		return false, nil
	})
}

func clientFor(kubeconfig string) (kubernetes.Interface, error) {
	rc, err := restConfigFor(kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(rc)
}

func restConfigFor(kubeconfig string) (*rest.Config, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", kubeconfig, err)
	}
	rc.QPS, rc.Burst = 50, 100
	return rc, nil
}

// findPause locates strata-pause: the flag, next to the strata binary, or PATH.
func findPause(flagValue string) (string, error) {
	if flagValue != "" {
		if _, err := os.Stat(flagValue); err != nil {
			return "", fmt.Errorf("--pause-binary %s: %v", flagValue, unwrapPathErr(err))
		}
		return flagValue, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "strata-pause")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("strata-pause not found next to the strata binary: build both with `make build` or pass --pause-binary")
}

func candidates(first string, rest ...string) []string {
	if first != "" {
		return []string{first}
	}
	return rest
}

// shortID names the per-data-dir runtime directory; socket paths must stay
// under 108 bytes whatever the data dir is.
func shortID(dataDir string) string {
	h := uint32(2166136261)
	for _, b := range []byte(dataDir) {
		h = (h ^ uint32(b)) * 16777619
	}
	return fmt.Sprintf("%08x", h)
}

// setupLogging sends every component's klog output to DATA/logs/strata.log
// and keeps the terminal for Strata's own progress lines.
func setupLogging(dir string, verbosity int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for k, v := range map[string]string{
		"logtostderr":      "false",
		"alsologtostderr":  "false",
		"stderrthreshold":  "FATAL",
		"log_file":         filepath.Join(dir, "strata.log"),
		"one_output":       "true",
		"skip_log_headers": "true",
		"v":                strconv.Itoa(verbosity),
	} {
		if err := fs.Set(k, v); err != nil {
			return fmt.Errorf("klog %s: %w", k, err)
		}
	}
	return nil
}

// klogWriter sends a library's own log lines (logrus) into klog's file.
type klogWriter struct{}

func (klogWriter) Write(p []byte) (int, error) {
	klog.InfoDepth(1, string(p))
	return len(p), nil
}

// nodeLabels are the labels the kubelet registers the node with.
func nodeLabels(wasmShim string) map[string]string {
	if wasmShim == "" {
		return nil
	}
	return map[string]string{wasmNodeLabel: "true"}
}

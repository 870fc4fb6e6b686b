package server

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/strata-dev/strata/pkg/apply"
	"github.com/strata-dev/strata/pkg/controllers/servingcsr"
	"github.com/strata-dev/strata/pkg/controlplane"
	"github.com/strata-dev/strata/pkg/fileutil"
	"github.com/strata-dev/strata/pkg/httpauth"
	"github.com/strata-dev/strata/pkg/jointoken"
	"github.com/strata-dev/strata/pkg/registry"
	"github.com/strata-dev/strata/pkg/scheduler"
	"github.com/strata-dev/strata/pkg/supervise"
)

// Component names, as the terminal, errors and ARCHITECTURE.md call them.
const (
	compEtcd            = "etcd"
	compSigningKey      = "signing-key"
	compRegistry        = "registry"
	compAPIServer       = "kube-apiserver"
	compControllers     = "kube-controller-manager"
	compScheduler       = "kube-scheduler"
	compJoin            = "agent-join"
	compServingApprover = "kubelet-serving-approver"
	compDiskSpace       = "disk-space"
)

// controlPlane is etcd, the API server, the controller manager, the
// scheduler, the OCI registry and the server's signing key.
func (s *server) controlPlane() []supervise.Component {
	seeLog := "see " + s.layout.StrataLog()
	return []supervise.Component{
		{Name: compEtcd, Hint: "see " + s.layout.EtcdLog(), Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
			return controlplane.RunEtcd(ctx, s.cp, func() {
				s.say("etcd ready (%s)", s.layout.EtcdDir())
				ready()
			})
		})},
		// Decrypting the key is a deliberately slow scrypt derivation: done
		// beside etcd and the API server; its users require it.
		supervise.Task(compSigningKey, nil, func(context.Context) error {
			key, err := ensureSigningKey(s.layout)
			s.key = key
			return err
		}),
		{Name: compRegistry, Hint: seeLog, Runnable: supervise.RunFunc(s.runRegistry)},
		{Name: compAPIServer, Requires: []string{compEtcd}, Hint: seeLog, Runnable: supervise.RunFunc(s.runAPIServer)},
		{Name: compControllers, Requires: []string{compAPIServer}, Hint: seeLog, Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
			// Ready once it built its controllers: the kubelet must
			// initialise after them (see node.go).
			return controlplane.RunControllerManager(ctx, s.cp, nil, func() {
				klog.InfoS("kube-controller-manager built its controllers")
				ready()
			})
		})},
		// Agents' TLS bootstrap: join token holders may ask for node
		// client certificates, nodes may renew theirs and read the
		// cluster's agent configuration; their serving certificates are
		// approved once checked against their Node.
		supervise.Task(compJoin, []string{compAPIServer}, s.applyJoin),
		{Name: compServingApprover, Requires: []string{compAPIServer}, Hint: seeLog, Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
			rc, err := s.supervisorREST()
			if err != nil {
				return err
			}
			ready()
			return servingcsr.Run(ctx, rc)
		})},
		{Name: compScheduler, Requires: []string{compAPIServer}, Hint: seeLog, Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
			if s.cfg.Vanilla {
				ready()
				return controlplane.RunScheduler(ctx, s.cp, nil)
			}
			file := s.layout.SchedulerConfig()
			data, err := scheduler.YAML(scheduler.Configuration(s.cp.SchedulerKubeconfig(), scheduler.Parallelism(runtime.GOMAXPROCS(0))))
			if err != nil {
				return err
			}
			if err := fileutil.WriteAtomic(file, data, 0o600); err != nil {
				return fmt.Errorf("scheduler config: %w", err)
			}
			ready()
			return controlplane.RunScheduler(ctx, s.cp, []string{"--config=" + file}, scheduler.Plugins()...)
		})},
	}
}

// runAPIServer runs kube-apiserver and reports it ready once /readyz says ok.
func (s *server) runAPIServer(ctx context.Context, ready func()) error {
	errc := make(chan error, 1)
	go func() { errc <- controlplane.RunAPIServer(ctx, s.cp, s.cp.EtcdEndpoint(), nil) }()
	client, err := clientFor(s.cp.SupervisorKubeconfig())
	if err != nil {
		return err
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(rctx)
		cancel()
		if err == nil && string(body) == "ok" {
			break
		}
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			return <-errc
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.say("API server ready at https://127.0.0.1:%d", s.cfg.APIPort)
	ready()
	return <-errc
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

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// runRegistry serves the registry on loopback for this host's root, and,
// with --node-ip, over TLS to anyone with Kubernetes credentials and RBAC
// rights: agents pull there with their node certificates.
func (s *server) runRegistry(ctx context.Context, ready func()) error {
	reg := &registry.Server{Addr: loopback(s.cfg.RegistryPort), OwnerOnly: true, RootDir: s.layout.RegistryDir(), LogOutput: klogWriter{}}
	if s.disk != nil {
		reg.Filter = s.disk.RegistryWriteFilter
	}
	if s.cfg.NodeIP != "" {
		rc, err := s.supervisorREST()
		if err != nil {
			return err
		}
		if reg.Auth, err = httpauth.New(rc, s.cp.CAFile()); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
		cert := s.cp.RegistryServingCert()
		reg.TLSAddr, reg.CertFile, reg.KeyFile, reg.ClientCAFile = s.registryPullAddr(), cert.CertFile, cert.KeyFile, s.cp.CAFile()
	}
	return reg.Run(ctx, ready)
}

// registryPullAddr is where agents pull the cluster's images.
func (s *server) registryPullAddr() string {
	return net.JoinHostPort(s.cfg.NodeIP, strconv.Itoa(s.cfg.RegistryPort))
}

// applyJoin writes the bindings agents join with and the configuration
// they read (pkg/jointoken), then says how to join.
func (s *server) applyJoin(ctx context.Context) error {
	rc, err := restConfigFor(s.cp.SupervisorKubeconfig())
	if err != nil {
		return err
	}
	c, err := client.New(rc, client.Options{})
	if err != nil {
		return fmt.Errorf("join RBAC: %w", err)
	}
	dnsIP, err := s.cp.DNSServiceIP()
	if err != nil {
		return err
	}
	ac := jointoken.AgentConfig{ClusterCIDR: s.cfg.ClusterCIDR, ServiceCIDR: s.cfg.ServiceCIDR, ClusterDNS: dnsIP.String(),
		ClusterDomain: s.cfg.ClusterDomain, RegistryName: s.cfg.RegistryHost(), SandboxImage: s.cfg.PauseImage()}
	if s.cfg.NodeIP != "" {
		ac.RegistryPull = s.registryPullAddr()
	}
	for _, obj := range append(append(jointoken.RBAC(), registry.RBAC()...), ac.ConfigMap()) {
		if err := apply.Apply(ctx, c, obj); err != nil {
			return fmt.Errorf("agent join: %w", err)
		}
	}
	if s.cfg.NodeIP != "" {
		s.say("agents join with: strata agent --server https://%s --token $(strata token create --data-dir %s)",
			net.JoinHostPort(s.cfg.NodeIP, strconv.Itoa(s.cfg.APIPort)), s.cfg.DataDir)
	}
	return nil
}

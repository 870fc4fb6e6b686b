package controlplane

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"k8s.io/client-go/transport"

	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
)

func (c *Config) controllerManagerArgs() []string {
	kubeconfig := c.kubeconfigPath("controller-manager")
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + c.certs.saKey,
		"--root-ca-file=" + c.certs.ca.CertFile,
		"--cluster-signing-cert-file=" + c.certs.ca.CertFile,
		"--cluster-signing-key-file=" + c.certs.ca.KeyFile,
		"--cluster-cidr=" + c.ClusterCIDR,
		"--service-cluster-ip-range=" + c.ServiceCIDR,
		// Node IPAM gives each node its share of the pod range; the
		// nodes route to each other's (pkg/node Routes).
		"--allocate-node-cidrs=true",
		"--node-cidr-mask-size=" + strconv.Itoa(c.NodeCIDRMaskSize),
		"--leader-elect=false",
		// Same process as the API server, which protects itself (priority
		// and fairness): the default 20 requests/s per controller capped
		// pods with a ResourceClaimTemplate at ~10/s (the resource claim
		// controller makes two writes per pod), as for kube-scheduler.
		"--kube-api-qps=500",
		"--kube-api-burst=1000",
		// No serving port: one process, and its health is the server's.
		"--secure-port=0",
		"--profiling=false",
		// tokencleaner (off upstream) deletes expired join tokens.
		"--controllers=*,tokencleaner",
		"--feature-gates=" + c.featureGates(),
	}
	if c.NodeMonitorGracePeriod > 0 {
		args = append(args, "--node-monitor-grace-period="+c.NodeMonitorGracePeriod.String())
	}
	return args
}

// RunControllerManager runs kube-controller-manager until ctx is done.
// built, if not nil, is called once every controller has been built: when
// the shared informers, which kube-controller-manager starts right after
// building its controllers, make their first request.
func RunControllerManager(ctx context.Context, c *Config, extraArgs []string, built func()) error {
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return fmt.Errorf("kube-controller-manager options: %w", err)
	}
	nfs := s.Flags(kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases())
	s.ParsedFlags = &nfs
	args := append(c.controllerManagerArgs(), extraArgs...)
	if err := parseComponentFlags("kube-controller-manager", nfs, args); err != nil {
		return err
	}
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-controller-manager feature gates: %w", err)
	}
	cfg, err := s.Config(ctx, kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases())
	if err != nil {
		return fmt.Errorf("kube-controller-manager config: %w", err)
	}
	if built != nil {
		// The informers' client is the only one kube-controller-manager
		// builds from this config with this user agent; clients copied
		// from it (rest.CopyConfig) keep the wrapper.
		cfg.Kubeconfig.Wrap(onUserAgent("/"+sharedInformersAgent, built))
	}
	if err := kcmapp.Run(ctx, cfg.Complete()); err != nil {
		return fmt.Errorf("kube-controller-manager: %w", err)
	}
	return nil
}

// sharedInformersAgent is the user agent suffix of kube-controller-manager's
// shared informer client (CreateControllerContext).
const sharedInformersAgent = "shared-informers"

// onUserAgent wraps a transport to call fn once, at the first request
// whose user agent ends with suffix.
func onUserAgent(suffix string, fn func()) transport.WrapperFunc {
	var once sync.Once
	return func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			if strings.HasSuffix(req.UserAgent(), suffix) {
				once.Do(fn)
			}
			return rt.RoundTrip(req)
		})
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

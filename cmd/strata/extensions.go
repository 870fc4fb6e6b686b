package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/pkg/admission/imagepolicy"
	"github.com/strata-dev/strata/pkg/controlplane/pki"
	"github.com/strata-dev/strata/pkg/extensions"
	"github.com/strata-dev/strata/pkg/layout"
	"github.com/strata-dev/strata/pkg/serverless"
	"github.com/strata-dev/strata/pkg/supervise"
)

// extensionsFlags are `strata extensions`'s settings.
type extensionsFlags struct {
	kubeconfig, stateDir        string
	webhookBind, webhookAddress string
	webhookPort                 int
	// In a cluster: the webhooks' Service, a mounted certificate, and the
	// object that owns what the extensions create.
	webhookService, webhookCertDir, ownerClusterRole string
	gatewayBind, functionDomain                      string
	gatewayPort, metricsPort                         int
	gatewaySecurity                                  serverless.Security
	unmatched                                        string
	policy                                           imagepolicy.Options
}

func newExtensionsCommand() *cobra.Command {
	f := extensionsFlags{policy: imagepolicy.DefaultOptions()}
	cmd := &cobra.Command{
		Use:   "extensions --kubeconfig KUBECONFIG",
		Short: "Run Strata's extensions (CRDs, signature admission, Functions) against an existing cluster",
		Long: `Runs the parts of Strata that only talk to the API server, the same
components strata server runs in-process, against any conformant cluster:
the CRDs, the image signature and device class admission webhooks with the
ClusterImagePolicy controller, the cluster-wide objects (RuntimeClass wasm,
the GPU DeviceClass, priority classes) and serverless Functions (controller,
gateway, autoscaler, metrics).

The API server must reach the webhooks at --webhook-address:--webhook-port;
their serving certificate is signed by a CA kept under --state-dir and
registered with the webhooks. Stop with SIGTERM or Ctrl-C; the webhooks stay
registered and fail closed until the extensions run again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			g := &supervise.Group{Report: cfg.Say}
			g.Add(extensions.Components(cfg)...)
			ctx, stop := signalContext()
			defer stop()
			return g.Run(ctx)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default: $KUBECONFIG)")
	fs.StringVar(&f.stateDir, "state-dir", "/var/lib/strata-extensions", "directory for the webhooks' CA and serving certificate and compiled wasm modules")
	fs.StringVar(&f.webhookBind, "webhook-bind-address", "127.0.0.1", "address the admission webhooks listen on")
	fs.StringVar(&f.webhookAddress, "webhook-address", "", "IP or DNS name the API server uses to reach the webhooks (default: --webhook-bind-address)")
	fs.IntVar(&f.webhookPort, "webhook-port", 9443, "port of the admission webhooks")
	fs.StringVar(&f.webhookService, "webhook-service", "", "NAMESPACE/NAME of a Service (port 443) that the API server reaches the webhooks through, instead of --webhook-address (in a cluster)")
	fs.StringVar(&f.webhookCertDir, "webhook-cert-dir", "", "directory with the webhooks' tls.crt, tls.key and the ca.crt that signed them (default: a CA and certificate made under --state-dir)")
	fs.StringVar(&f.ownerClusterRole, "owner-clusterrole", "", "ClusterRole that owns every cluster-level object the extensions create, so deleting it (uninstalling the Helm chart) removes them all")
	fs.StringVar(&f.gatewayBind, "gateway-bind-address", "0.0.0.0", "address of the functions' HTTP gateway")
	fs.IntVar(&f.gatewayPort, "gateway-port", 8088, "port of the functions' HTTP gateway")
	addGatewaySecurityFlags(fs, &f.gatewaySecurity)
	fs.StringVar(&f.functionDomain, "function-domain", "localhost", "functions answer at http://<function>.<namespace>.DOMAIN:<gateway-port>/")
	fs.IntVar(&f.metricsPort, "metrics-port", 9464, "port on loopback serving Prometheus metrics at https://127.0.0.1:PORT/metrics (bearer token with get on /metrics)")
	fs.StringVar(&f.unmatched, "unmatched-images", string(f.policy.Unmatched), "images that no ClusterImagePolicy covers are: deny, warn or allow")
	fs.DurationVar(&f.policy.Timeout, "image-verify-timeout", f.policy.Timeout, "deadline for the registry work of one admission request (below the webhook timeout of 10s)")
	fs.DurationVar(&f.policy.CacheTTL, "image-cache-ttl", f.policy.CacheTTL, "how long a verified digest stays admitted without asking the registry")
	return cmd
}

// config checks the flags and prepares the webhooks' certificate.
func (f *extensionsFlags) config(cmd *cobra.Command) (extensions.Config, error) {
	var cfg extensions.Config
	u, err := imagepolicy.ParseUnmatched(f.unmatched)
	if err != nil {
		return cfg, fmt.Errorf("--%w", err)
	}
	f.policy.Unmatched = u
	if err := imagepolicy.CheckTimeout(f.policy.Timeout); err != nil {
		return cfg, err
	}
	if err := f.gatewaySecurity.Validate(); err != nil {
		return cfg, err
	}
	for _, p := range []struct {
		flag string
		v    int
	}{{"--webhook-port", f.webhookPort}, {"--gateway-port", f.gatewayPort}, {"--metrics-port", f.metricsPort}} {
		if p.v < 1 || p.v > 65535 {
			return cfg, fmt.Errorf("%s %d is out of range: use a port from 1 to 65535", p.flag, p.v)
		}
	}
	address := f.webhookAddress
	if address == "" {
		address = f.webhookBind
	}
	var svcNamespace, svcName string
	if f.webhookService != "" {
		var ok bool
		if svcNamespace, svcName, ok = strings.Cut(f.webhookService, "/"); !ok || svcNamespace == "" || svcName == "" {
			return cfg, fmt.Errorf("--webhook-service %q: use NAMESPACE/NAME of the webhooks' Service", f.webhookService)
		}
		address = svcName + "." + svcNamespace + ".svc"
	} else if ip := net.ParseIP(address); ip != nil && ip.IsUnspecified() {
		return cfg, fmt.Errorf("--webhook-address is needed when the webhooks listen on %s: pass the address the API server reaches this host at", address)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return cfg, fmt.Errorf("kubeconfig: %w (pass --kubeconfig or set KUBECONFIG)", err)
	}
	rc.QPS, rc.Burst = 50, 100
	l, err := layout.New(f.stateDir)
	if err != nil {
		return cfg, fmt.Errorf("--state-dir: %w", err)
	}
	certDir, certName, keyName := f.webhookCertDir, "tls.crt", "tls.key"
	var caPEM []byte
	if certDir != "" {
		if caPEM, err = os.ReadFile(filepath.Join(certDir, "ca.crt")); err != nil {
			return cfg, fmt.Errorf("--webhook-cert-dir: %w (it needs tls.crt, tls.key and ca.crt)", err)
		}
	} else {
		cert, ca, err := webhookCert(l, address)
		if err != nil {
			return cfg, fmt.Errorf("webhook certificate under %s: %w", l.PKIDir(), err)
		}
		certDir, certName, keyName, caPEM = filepath.Dir(cert.CertFile), filepath.Base(cert.CertFile), filepath.Base(cert.KeyFile), ca
	}
	owner, err := f.owner(cmd.Context(), rc)
	if err != nil {
		return cfg, err
	}
	out := cmd.ErrOrStderr()
	cfg = extensions.Config{
		REST:  rc,
		Owner: owner,
		Webhook: extensions.Webhook{
			Host: f.webhookBind, Port: f.webhookPort,
			CertDir: certDir, CertName: certName, KeyName: keyName,
			ClientConfig: func(path string) admissionregistrationv1.WebhookClientConfig {
				if svcName != "" {
					return admissionregistrationv1.WebhookClientConfig{CABundle: caPEM,
						Service: &admissionregistrationv1.ServiceReference{Namespace: svcNamespace, Name: svcName, Path: &path, Port: ptr.To[int32](443)}}
				}
				url := "https://" + net.JoinHostPort(address, strconv.Itoa(f.webhookPort)) + path
				return admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM}
			},
		},
		ImagePolicy: f.policy,
		Gateway: serverless.Options{
			GatewayAddr:  net.JoinHostPort(f.gatewayBind, strconv.Itoa(f.gatewayPort)),
			Domain:       f.functionDomain,
			URLPort:      f.gatewayPort,
			WasmCacheDir: l.FunctionWasmCache(),
			Security:     f.gatewaySecurity,
		},
		// The webhooks' certificate serves metrics too; this cluster's
		// client CA is unknown here, so scrapers present bearer tokens.
		Metrics: extensions.MetricsListener{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(f.metricsPort)),
			CertFile: filepath.Join(certDir, certName), KeyFile: filepath.Join(certDir, keyName)},
		Say: func(format string, args ...any) {
			fmt.Fprintf(out, "strata extensions: %s\n", fmt.Sprintf(format, args...))
		},
	}
	klog.InfoS("Strata extensions", "server", rc.Host, "webhook", cfg.Webhook.ClientConfig("/"))
	return cfg, nil
}

// owner is the reference to --owner-clusterrole, if given.
func (f *extensionsFlags) owner(ctx context.Context, rc *rest.Config) (*metav1.OwnerReference, error) {
	if f.ownerClusterRole == "" {
		return nil, nil
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	role, err := cs.RbacV1().ClusterRoles().Get(ctx, f.ownerClusterRole, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("--owner-clusterrole %s: %w", f.ownerClusterRole, err)
	}
	return &metav1.OwnerReference{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole", Name: role.Name, UID: role.UID}, nil
}

// webhookCert loads or makes the webhooks' CA and a serving certificate
// for address, under the state dir's PKI directory.
func webhookCert(l layout.Layout, address string) (pki.Paths, []byte, error) {
	dir := l.PKIDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return pki.Paths{}, nil, err
	}
	ca, err := pki.LoadOrCreateCA(dir, "ca", "strata-extensions-ca")
	if err != nil {
		return pki.Paths{}, nil, err
	}
	c := pki.Cert{Name: "webhook-serving", CommonName: address, Server: true}
	if ip := net.ParseIP(address); ip != nil {
		c.IPs = []net.IP{ip}
	} else {
		c.DNSNames = []string{address}
	}
	cert, err := ca.Issue(dir, c)
	if err != nil {
		return pki.Paths{}, nil, err
	}
	caPEM, err := os.ReadFile(l.CAFile())
	return cert, caPEM, err
}

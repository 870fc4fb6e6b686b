package controlplane

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/util/errors"
	genericapiserver "k8s.io/apiserver/pkg/server"
	encryptionconfigcontroller "k8s.io/apiserver/pkg/server/options/encryptionconfig/controller"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	utilversion "k8s.io/component-base/version"
	"k8s.io/klog/v2"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	"k8s.io/utils/clock"

	"github.com/strata-dev/strata/pkg/encryption"
)

// apiserverArgs are kube-apiserver's flags for a Strata cluster.
func (c *Config) apiserverArgs(etcdEndpoint, admissionConfig, auditPolicy, authnConfig string) []string {
	s := c.certs
	args := []string{
		"--admission-control-config-file=" + admissionConfig,
		"--etcd-servers=https://" + etcdEndpoint,
		"--etcd-cafile=" + s.etcdCA.CertFile,
		"--etcd-certfile=" + s.etcdClient.CertFile,
		"--etcd-keyfile=" + s.etcdClient.KeyFile,
		"--bind-address=" + c.BindAddress.String(),
		"--advertise-address=" + c.AdvertiseAddress.String(),
		"--secure-port=" + strconv.Itoa(c.APIPort),
		"--tls-cert-file=" + s.apiserver.CertFile,
		"--tls-private-key-file=" + s.apiserver.KeyFile,
		"--client-ca-file=" + s.ca.CertFile,
		"--authentication-config=" + authnConfig,
		// Agents join with upstream bootstrap tokens (pkg/jointoken).
		"--enable-bootstrap-token-auth=true",
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction,PodSecurity",
		"--allow-privileged=true",
		"--service-cluster-ip-range=" + c.ServiceCIDR,
		"--service-account-issuer=https://kubernetes.default.svc." + c.ClusterDomain,
		"--service-account-key-file=" + s.saKey,
		"--service-account-signing-key-file=" + s.saKey,
		"--kubelet-client-certificate=" + s.kubeletClient.CertFile,
		"--kubelet-client-key=" + s.kubeletClient.KeyFile,
		"--kubelet-certificate-authority=" + s.ca.CertFile,
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--profiling=" + strconv.FormatBool(c.Profiling),
		"--enable-priority-and-fairness=true",
		"--feature-gates=" + c.featureGates(),
		"--runtime-config=" + runtimeConfig,
		// Secrets encrypted in etcd (pkg/encryption); the file is re-read
		// so that `strata secrets-encrypt rotate` needs no restart.
		"--encryption-provider-config=" + c.Layout.EncryptionConfig(),
		"--encryption-provider-config-automatic-reload=true",
		"--audit-policy-file=" + auditPolicy,
		"--audit-log-path=" + c.Layout.AuditLog(),
		"--audit-log-maxsize=100",
		"--audit-log-maxbackup=5",
		"--audit-log-maxage=30",
	}
	if c.NodeGrace > 0 {
		// DefaultTolerationSeconds: how long pods stay on a node that
		// went NotReady or unreachable before the taint manager evicts
		// them (upstream: 300 s).
		secs := strconv.Itoa(int(c.NodeGrace.Round(time.Second).Seconds()))
		args = append(args, "--default-not-ready-toleration-seconds="+secs, "--default-unreachable-toleration-seconds="+secs)
	}
	return args
}

// RunAPIServer runs kube-apiserver until ctx is done. It returns an error at
// once if the configuration is invalid, and otherwise blocks.
func RunAPIServer(ctx context.Context, c *Config, etcdEndpoint string, extraArgs []string) error {
	admissionConfig, err := c.writeAdmissionConfig()
	if err != nil {
		return err
	}
	auditPolicy, err := c.writeAuditPolicy()
	if err != nil {
		return err
	}
	authnConfig, err := c.writeAuthenticationConfig()
	if err != nil {
		return err
	}
	if err := encryption.Ensure(c.Layout.EncryptionConfig()); err != nil {
		return err
	}
	// Upstream polls the encryption config once a minute; a rotation
	// waits for two reloads, and re-reading a small file every few
	// seconds costs nothing.
	encryptionconfigcontroller.EncryptionConfigFileChangePollDuration = 5 * time.Second
	s := apiserveroptions.NewServerRunOptions()
	args := append(c.apiserverArgs(etcdEndpoint, admissionConfig, auditPolicy, authnConfig), extraArgs...)
	if err := parseComponentFlags("kube-apiserver", s.Flags(), args); err != nil {
		return err
	}
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-apiserver feature gates: %w", err)
	}
	// The loopback clients inside the apiserver should not print warnings
	// about their own requests.
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	completed, err := s.Complete(ctx)
	if err != nil {
		return fmt.Errorf("kube-apiserver options: %w", err)
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return fmt.Errorf("kube-apiserver options: %w", errors.NewAggregate(errs))
	}
	// apiserverapp.Run, with the authenticator wrapped in between.
	klog.InfoS("kube-apiserver", "version", utilversion.Get())
	if completed.InformerName == nil {
		if completed.InformerName, err = cache.NewInformerName("kube-apiserver"); err != nil {
			return fmt.Errorf("kube-apiserver: %w", err)
		}
	}
	config, err := apiserverapp.NewConfig(completed)
	if err != nil {
		return fmt.Errorf("kube-apiserver config: %w", err)
	}
	cacheClientCerts(config)
	c.guardDisk(config)
	cc, err := config.Complete()
	if err != nil {
		return fmt.Errorf("kube-apiserver config: %w", err)
	}
	chain, err := apiserverapp.CreateServerChain(cc)
	if err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	// The aggregator is the server of the chain that serves HTTP.
	chain.GenericAPIServer.ShutdownTimeout = shutdownTimeout
	prepared, err := chain.PrepareRun()
	if err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	if err := prepared.Run(ctx); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	return nil
}

// guardDisk adds the data dir's free space to /readyz and refuses
// writes while it is low. The aggregator's chain is the one every request
// meets (the servers behind it are reached through their unprotected
// handlers), and its RequestInfo says which requests would store.
func (c *Config) guardDisk(config *apiserverapp.Config) {
	if c.Disk == nil {
		return
	}
	gc := &config.Aggregator.GenericConfig.Config
	// The aggregator's config is a copy of kube-apiserver's, its
	// ReadyzChecks a slice sharing their backing array: an append in place
	// would be overwritten by the next check kube-apiserver adds (its
	// informer-sync), so the check goes on a slice of its own.
	gc.ReadyzChecks = append(slices.Clip(gc.ReadyzChecks), c.Disk)
	build := gc.BuildHandlerChainFunc
	gc.BuildHandlerChainFunc = func(h http.Handler, cfg *genericapiserver.Config) http.Handler {
		return build(c.Disk.APIWriteFilter(h), cfg)
	}
}

// cacheClientCerts puts a certCache in front of the authenticator of
// each server in kube-apiserver's chain (the aggregator's is the one
// requests meet), where the client CA is the only certificate authority.
func cacheClientCerts(config *apiserverapp.Config) {
	generic := config.KubeAPIs.ControlPlane.Generic
	clientCA := generic.SecureServing.ClientCA
	if clientCA == nil || generic.Authentication.RequestHeaderConfig != nil || generic.Authentication.Authenticator == nil {
		return
	}
	wrapped := newCertCache(generic.Authentication.Authenticator, clientCA.VerifyOptions, clock.RealClock{})
	for _, a := range []*genericapiserver.AuthenticationInfo{
		&generic.Authentication,
		&config.ApiExtensions.GenericConfig.Authentication,
		&config.Aggregator.GenericConfig.Authentication,
	} {
		a.Authenticator = wrapped
	}
}

// shutdownTimeout bounds how long kube-apiserver's HTTP server waits for
// open connections when it stops. Upstream waits up to the request
// timeout (a minute) for them, for the sake of clients behind a load
// balancer; here every client is in this process or on this machine, and
// some in-process clients (kube-proxy's informers run with NeverStop)
// never close their watches, so a stop would always wait out the minute
// (and HTTP/2 alone waits a second for each client's GOAWAY answer).
// Requests in flight still drain first: RunWithContext waits for them
// whatever this timeout.
const shutdownTimeout = 200 * time.Millisecond

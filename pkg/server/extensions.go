package server

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/client-go/rest"

	"github.com/strata-dev/strata/pkg/admission/imagepolicy"
	"github.com/strata-dev/strata/pkg/controlplane"
	"github.com/strata-dev/strata/pkg/extensions"
	"github.com/strata-dev/strata/pkg/serverless"
	"github.com/strata-dev/strata/pkg/supervise"
)

// compAdminConfig publishes the admin kubeconfig.
const compAdminConfig = "admin-kubeconfig"

// extensions are Strata's parts on top of Kubernetes (pkg/extensions),
// wired to this server: the webhooks on loopback with the cluster CA, the
// server's key trusted for its own images. The admin kubeconfig is
// published last, once admission is enforced, so nobody can create objects
// in the window before.
func (s *server) extensions() ([]supervise.Component, error) {
	if s.cfg.Vanilla {
		return []supervise.Component{supervise.Task(compAdminConfig, []string{compAPIServer}, s.publishAdminKubeconfig)}, nil
	}
	rc, err := s.supervisorREST()
	if err != nil {
		return nil, err
	}
	caPEM, err := s.cp.CAPEM()
	if err != nil {
		return nil, err
	}
	unmatched, _ := imagepolicy.ParseUnmatched(s.cfg.UnmatchedImages) // checked by Validate
	policy := imagepolicy.DefaultOptions()
	policy.Unmatched, policy.Timeout, policy.CacheTTL = unmatched, s.cfg.ImageVerifyTimeout, s.cfg.ImageCacheTTL
	cert := s.cp.WebhookServingCert()
	cs := extensions.Components(extensions.Config{
		REST:  rc,
		After: compAPIServer,
		Webhook: extensions.Webhook{
			Host: "127.0.0.1", Port: s.cfg.WebhookPort,
			CertDir: filepath.Dir(cert.CertFile), CertName: filepath.Base(cert.CertFile), KeyName: filepath.Base(cert.KeyFile),
			ClientCAName: filepath.Base(s.cp.CAFile()), ClientCommonName: controlplane.WebhookClientCommonName,
			ClientConfig: func(path string) admissionregistrationv1.WebhookClientConfig {
				url := fmt.Sprintf("https://%s%s", loopback(s.cfg.WebhookPort), path)
				return admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM}
			},
		},
		ImagePolicy: policy,
		SystemPolicy: &extensions.SystemPolicy{
			Requires: compSigningKey,
			Globs:    []string{s.cfg.RegistryHost() + "/strata/**", loopback(s.cfg.RegistryPort) + "/strata/**"},
			Key:      func() []byte { return s.key.publicPEM },
		},
		Gateway: serverless.Options{
			GatewayAddr:  net.JoinHostPort(s.cfg.BindAddress, strconv.Itoa(s.cfg.GatewayPort)),
			Domain:       s.cfg.FunctionDomain,
			URLPort:      s.cfg.GatewayPort,
			WasmCacheDir: s.layout.FunctionWasmCache(),
			Security:     s.gatewaySecurity(),
		},
		Metrics: extensions.MetricsListener{Addr: loopback(s.cfg.MetricsPort),
			CertFile: s.cp.MetricsServingCert().CertFile, KeyFile: s.cp.MetricsServingCert().KeyFile, ClientCAFile: s.cp.CAFile()},
		Say:  s.say,
		Hint: "see " + s.layout.StrataLog(),
	})
	return append(cs, supervise.Task(compAdminConfig, []string{extensions.Webhooks, extensions.ClusterObjects, extensions.Gateway}, s.publishAdminKubeconfig)), nil
}

// gatewaySecurity is the flags' gateway security; client certificates
// are checked against the cluster CA.
func (s *server) gatewaySecurity() serverless.Security {
	sec := s.cfg.GatewaySecurity
	sec.ClientCAFile = s.cp.CAFile()
	return sec
}

func (s *server) publishAdminKubeconfig(context.Context) error {
	if err := s.cp.PublishAdminKubeconfig(); err != nil {
		return err
	}
	s.say("admin kubeconfig: %s (try: strata kubectl --data-dir %s get nodes)", s.cp.AdminKubeconfig(), s.cfg.DataDir)
	return nil
}

// supervisorREST is the in-process components' client configuration.
func (s *server) supervisorREST() (*rest.Config, error) {
	return restConfigFor(s.cp.SupervisorKubeconfig())
}

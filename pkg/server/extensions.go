package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/strata-dev/strata/pkg/admission"
	"github.com/strata-dev/strata/pkg/crds"
	"github.com/strata-dev/strata/pkg/serverless"
	"github.com/strata-dev/strata/pkg/supervise"
)

// Names of Strata's own components.
const (
	compCRDs           = "crds"
	compWebhooks       = "admission-webhooks"
	compClusterObjects = "cluster-objects"
	compGateway        = "function-gateway"
	compMetrics        = "metrics"
	compAdminConfig    = "admin-kubeconfig"
)

// extensions are Strata's parts on top of Kubernetes: CRDs, admission
// webhooks, the objects every cluster gets, and serverless Functions. The
// admin kubeconfig is published last, once admission is enforced, so
// nobody can create objects in the window before.
func (s *server) extensions() []supervise.Component {
	if s.cfg.Vanilla {
		return []supervise.Component{supervise.Task(compAdminConfig, []string{compAPIServer}, s.publishAdminKubeconfig)}
	}
	seeLog := "see " + s.layout.StrataLog()
	return []supervise.Component{
		supervise.Task(compCRDs, []string{compAPIServer}, func(ctx context.Context) error {
			c, err := s.apiClient()
			if err != nil {
				return err
			}
			return crds.Install(ctx, c)
		}),
		{Name: compWebhooks, Requires: []string{compCRDs, compSigningKey}, Hint: seeLog, Runnable: supervise.RunFunc(s.runAdmission)},
		supervise.Task(compClusterObjects, []string{compAPIServer}, func(ctx context.Context) error {
			c, err := s.apiClient()
			if err != nil {
				return err
			}
			if err := ensureRuntimeClass(ctx, c); err != nil {
				return err
			}
			return ensureGPUObjects(ctx, c)
		}),
		{Name: compGateway, Requires: []string{compCRDs}, Hint: seeLog, Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
			rc, err := s.supervisorREST()
			if err != nil {
				return err
			}
			srv, err := serverless.New(rc, serverless.Options{
				GatewayAddr:  net.JoinHostPort(s.cfg.BindAddress, strconv.Itoa(s.cfg.GatewayPort)),
				Domain:       s.cfg.FunctionDomain,
				URLPort:      s.cfg.GatewayPort,
				WasmCacheDir: s.layout.FunctionWasmCache(),
			})
			if err != nil {
				return err
			}
			s.serverless = srv
			return srv.Run(ctx, ready)
		})},
		{Name: compMetrics, Requires: []string{compGateway}, Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
			mux := http.NewServeMux()
			mux.Handle("/metrics", s.serverless.MetricsHandler())
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
			return supervise.ServeHTTP(ctx, loopback(s.cfg.MetricsPort), srv, ready)
		})},
		supervise.Task(compAdminConfig, []string{compWebhooks, compClusterObjects, compGateway}, s.publishAdminKubeconfig),
	}
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

// apiClient is a controller-runtime client that knows Strata's types.
func (s *server) apiClient() (client.Client, error) {
	rc, err := s.supervisorREST()
	if err != nil {
		return nil, err
	}
	scheme, err := admission.Scheme()
	if err != nil {
		return nil, err
	}
	c, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return c, nil
}

// Package extensions assembles Strata's own parts on top of Kubernetes as
// supervised components: CRDs, the admission webhooks with the policy
// controller, the cluster-wide objects Strata's features need, and
// serverless Functions (controller, gateway, autoscaler, metrics). They talk
// to the API server only, so the same components run inside `strata
// server` and, through `strata extensions`, against any conformant cluster.
package extensions

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/strata-dev/strata/pkg/admission"
	"github.com/strata-dev/strata/pkg/admission/imagepolicy"
	"github.com/strata-dev/strata/pkg/apply"
	"github.com/strata-dev/strata/pkg/crds"
	"github.com/strata-dev/strata/pkg/httpauth"
	"github.com/strata-dev/strata/pkg/serverless"
	"github.com/strata-dev/strata/pkg/supervise"
)

// Component names.
const (
	CRDs           = "crds"
	Webhooks       = "admission-webhooks"
	ClusterObjects = "cluster-objects"
	Gateway        = "function-gateway"
	Metrics        = "metrics"
)

// Config is what the extensions need from the process that runs them.
type Config struct {
	// REST reaches the API server with rights to install CRDs, register
	// webhooks and manage Strata's objects.
	REST *rest.Config
	// After names a component that must be ready before any extension
	// talks to the API server ("" when the API server is elsewhere).
	After string
	// Webhook is where the webhook server listens and how the API server
	// reaches it.
	Webhook Webhook
	// ImagePolicy configures signature verification at admission.
	ImagePolicy imagepolicy.Options
	// SystemPolicy, when set, trusts a key for the platform's own images.
	SystemPolicy *SystemPolicy
	// Gateway serves Functions.
	Gateway serverless.Options
	// Metrics serves Strata's Prometheus metrics.
	Metrics MetricsListener
	// Say prints a progress line for the person who started the process.
	Say func(format string, args ...any)
	// Hint is added to component errors (where the logs are).
	Hint string
	// Owner, when set, is given as owner to every object the extensions
	// create at the cluster level (CRDs, webhook configurations, cluster
	// objects), so that deleting it (a Helm release's ClusterRole) lets the
	// garbage collector remove them all.
	Owner *metav1.OwnerReference

	clientOnce func() (client.Client, error)
}

// Webhook describes the admission webhook server.
type Webhook struct {
	Host     string
	Port     int
	CertDir  string
	CertName string
	KeyName  string
	// ClientConfig is how the API server reaches the webhook at path.
	ClientConfig func(path string) admissionregistrationv1.WebhookClientConfig
	// ClientCAName, when set, is a CA file in CertDir that must have
	// signed the caller's certificate, whose common name must be
	// ClientCommonName: only the API server may call the webhooks.
	ClientCAName, ClientCommonName string
}

// MetricsListener is the metrics listener: HTTPS, and every scrape authenticated
// (a client certificate signed by ClientCAFile, or a bearer token through
// TokenReview) and authorized (get on the path /metrics, as for the API
// server's own metrics).
type MetricsListener struct {
	Addr              string
	CertFile, KeyFile string
	// ClientCAFile is "" where client certificates cannot be checked
	// (another cluster's CA is unknown): tokens only.
	ClientCAFile string
}

// SystemPolicy trusts Key, published as a Secret in SystemNamespace, for
// images matching Globs; Key is read when the webhooks start (after the
// component named Requires is ready).
type SystemPolicy struct {
	Requires string
	Globs    []string
	Key      func() []byte
}

// Components returns the extensions as supervised components.
func Components(c Config) []supervise.Component {
	after := func(names ...string) []string {
		if c.After != "" {
			names = append(names, c.After)
		}
		return names
	}
	webhookNeeds := []string{CRDs}
	if c.SystemPolicy != nil && c.SystemPolicy.Requires != "" {
		webhookNeeds = append(webhookNeeds, c.SystemPolicy.Requires)
	}
	var gateway *serverless.Server
	// One client for the components that write cluster objects, made
	// when the first of them runs (the API server may not be up before).
	c.clientOnce = sync.OnceValues(c.newClient)
	return []supervise.Component{
		supervise.Task(CRDs, after(), func(ctx context.Context) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			return crds.Install(ctx, cl)
		}),
		{Name: Webhooks, Requires: webhookNeeds, Hint: c.Hint, Runnable: supervise.RunFunc(c.runAdmission)},
		supervise.Task(ClusterObjects, after(), func(ctx context.Context) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			return ensureClusterObjects(ctx, cl)
		}),
		{Name: Gateway, Requires: []string{CRDs}, Hint: c.Hint, Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
			srv, err := serverless.New(c.REST, c.Gateway)
			if err != nil {
				return err
			}
			gateway = srv
			return srv.Run(ctx, ready)
		})},
		{Name: Metrics, Requires: []string{Gateway}, Hint: c.Hint, Runnable: supervise.RunFunc(func(ctx context.Context, ready func()) error {
			srv, err := c.Metrics.server(c.REST, gateway.MetricsHandler())
			if err != nil {
				return err
			}
			return supervise.ServeHTTP(ctx, c.Metrics.Addr, srv, ready)
		})},
	}
}

// Client is a controller-runtime client that knows Strata's types.
func Client(rc *rest.Config) (client.Client, error) {
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

// client is the client the extensions write cluster objects with.
func (c *Config) client() (client.Client, error) { return c.clientOnce() }

func (c *Config) newClient() (client.Client, error) {
	cl, err := Client(c.REST)
	if err != nil || c.Owner == nil {
		return cl, err
	}
	return apply.Owned(cl, *c.Owner), nil
}

func (c *Config) say(format string, args ...any) {
	if c.Say != nil {
		c.Say(format, args...)
	}
}

// server is the metrics HTTPS server.
func (m MetricsListener) server(rc *rest.Config, metrics http.Handler) (*http.Server, error) {
	auth, err := httpauth.New(rc, m.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	tc, err := httpauth.ServerTLS(m.CertFile, m.KeyFile, m.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", auth.Handler(httpauth.NonResource, metrics))
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tc}, nil
}

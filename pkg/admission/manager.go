// Package admission assembles Strata's admission webhooks (image signature
// policy in imagepolicy/, GPU device classes in deviceclass/) and the
// ClusterImagePolicy status controller into one controller-runtime
// manager, and registers the webhooks. pkg/extensions runs it, in `strata
// server` and in `strata extensions` on any cluster.
package admission

import (
	"context"
	"fmt"
	"net/http"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	securityv1 "github.com/strata-dev/strata/api/security/v1alpha1"
	"github.com/strata-dev/strata/pkg/admission/deviceclass"
	"github.com/strata-dev/strata/pkg/admission/imagepolicy"
	"github.com/strata-dev/strata/pkg/apply"
	imagepolicyctrl "github.com/strata-dev/strata/pkg/controllers/imagepolicy"
)

// Scheme knows the types the manager reads and writes.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, securityv1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// NewManager returns a manager serving the image policy webhooks on srv
// and running the ClusterImagePolicy status controller.
func NewManager(rc *rest.Config, srv webhook.Options, o imagepolicy.Options) (manager.Manager, error) {
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	mgr, err := manager.New(rc, manager.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer:          webhook.NewServer(srv),
	})
	if err != nil {
		return nil, fmt.Errorf("image policy manager: %w", err)
	}
	imagepolicy.Setup(mgr, o)
	mgr.GetWebhookServer().Register(deviceclass.Path, &webhook.Admission{Handler: &deviceclass.Validator{
		Reader: mgr.GetAPIReader(), Decoder: cradmission.NewDecoder(mgr.GetScheme())}})
	rec := &imagepolicyctrl.Reconciler{Client: mgr.GetClient(), Secrets: imagepolicy.SecretReader{Reader: mgr.GetAPIReader()}, Resync: o.SecretTTL}
	if err := rec.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("image policy controller: %w", err)
	}
	return mgr, nil
}

// WaitServing waits until mgr's webhook server answers and its cache is
// synced, or mgr stops (its Start error arrives on errc).
func WaitServing(ctx context.Context, mgr manager.Manager, errc <-chan error) error {
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-errc:
			return false, fmt.Errorf("image policy manager: %w", err)
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		if mgr.GetWebhookServer().StartedChecker()(req) != nil {
			return false, nil
		}
		return mgr.GetCache().WaitForCacheSync(ctx), nil
	})
	if err != nil {
		return fmt.Errorf("image policy webhook did not start: %w", err)
	}
	return nil
}

// RegisterWebhooks creates or updates the webhook configurations.
func RegisterWebhooks(ctx context.Context, c client.Client, clientConfig func(path string) admissionregistrationv1.WebhookClientConfig) error {
	mutating, validating := imagepolicy.Configurations(clientConfig)
	for _, obj := range []client.Object{mutating, validating, deviceclass.Configuration(clientConfig(deviceclass.Path))} {
		if err := apply.Apply(ctx, c, obj); err != nil {
			return fmt.Errorf("register webhook %s: %w", obj.GetName(), err)
		}
	}
	return nil
}

// Package security assembles image signature admission into a
// controller-runtime manager: the ClusterImagePolicy CRD, the webhooks and
// the policy status controller. `strata server` runs it in-process;
// `strata webhook serve` runs the same manager in any cluster.
package security

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	securityv1 "github.com/strata-dev/strata/api/security/v1alpha1"
	"github.com/strata-dev/strata/config/crd"
	"github.com/strata-dev/strata/pkg/admission/deviceclass"
	"github.com/strata-dev/strata/pkg/admission/imagepolicy"
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
		Reader: mgr.GetAPIReader(), Decoder: admission.NewDecoder(mgr.GetScheme())}})
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

// CRDs returns the CustomResourceDefinitions in config/crd.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := fs.Glob(crd.Files, "*.yaml")
	if err != nil {
		return nil, err
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		data, err := crd.Files.ReadFile(f)
		if err != nil {
			return nil, err
		}
		c := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, c); err != nil {
			return nil, fmt.Errorf("CRD %s: %w", f, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// InstallCRDs creates or updates every CRD and waits until the API server
// serves them.
func InstallCRDs(ctx context.Context, c client.Client) error {
	crds, err := CRDs()
	if err != nil {
		return err
	}
	for _, want := range crds {
		if err := Apply(ctx, c, want); err != nil {
			return fmt.Errorf("install CRD %s: %w", want.Name, err)
		}
		err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			var got apiextensionsv1.CustomResourceDefinition
			if err := c.Get(ctx, client.ObjectKey{Name: want.Name}, &got); err != nil {
				return false, nil
			}
			for _, cond := range got.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s not established: %w", want.Name, err)
		}
	}
	return nil
}

// RegisterWebhooks creates or updates the webhook configurations.
func RegisterWebhooks(ctx context.Context, c client.Client, clientConfig func(path string) admissionregistrationv1.WebhookClientConfig) error {
	mutating, validating := imagepolicy.Configurations(clientConfig)
	for _, obj := range []client.Object{mutating, validating, deviceclass.Configuration(clientConfig(deviceclass.Path))} {
		if err := Apply(ctx, c, obj); err != nil {
			return fmt.Errorf("register webhook %s: %w", obj.GetName(), err)
		}
	}
	return nil
}

// Apply creates obj or replaces the existing object with it, keeping the
// existing object's resourceVersion.
func Apply(ctx context.Context, c client.Client, obj client.Object) error {
	existing := obj.DeepCopyObject().(client.Object)
	err := c.Get(ctx, client.ObjectKeyFromObject(obj), existing)
	switch {
	case apierrors.IsNotFound(err):
		return c.Create(ctx, obj)
	case err != nil:
		return err
	}
	obj.SetResourceVersion(existing.GetResourceVersion())
	return c.Update(ctx, obj)
}

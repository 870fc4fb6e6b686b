// Package deviceclass refuses ResourceClaims and ResourceClaimTemplates
// that name a DeviceClass that does not exist. Upstream accepts such a claim
// and its pod then waits in Pending with a scheduler event; refusing it at
// apply time tells the user at once, with the classes that do exist.
package deviceclass

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Path is where the webhook is served.
const Path = "/validate-device-classes"

// ConfigurationName names the ValidatingWebhookConfiguration.
const ConfigurationName = "strata-device-classes"

// Validator checks the device classes a claim names.
type Validator struct {
	// Reader gets DeviceClasses (an uncached reader is fine: claims are
	// created far less often than they are read).
	Reader  client.Reader
	Decoder admission.Decoder
}

// Handle implements admission.Handler.
func (v *Validator) Handle(ctx context.Context, req admission.Request) admission.Response {
	var spec resourcev1.ResourceClaimSpec
	prefix := "spec"
	switch req.Kind.Kind {
	case "ResourceClaim":
		var c resourcev1.ResourceClaim
		if err := v.Decoder.Decode(req, &c); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		spec = c.Spec
	case "ResourceClaimTemplate":
		var c resourcev1.ResourceClaimTemplate
		if err := v.Decoder.Decode(req, &c); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		spec, prefix = c.Spec.Spec, "spec.spec"
	default:
		return admission.Allowed("")
	}
	var problems []string
	var known []string
	for i, r := range spec.Devices.Requests {
		type ref struct{ field, class string }
		var refs []ref
		if r.Exactly != nil {
			refs = append(refs, ref{fmt.Sprintf("%s.devices.requests[%d].exactly.deviceClassName", prefix, i), r.Exactly.DeviceClassName})
		}
		for j, sub := range r.FirstAvailable {
			refs = append(refs, ref{fmt.Sprintf("%s.devices.requests[%d].firstAvailable[%d].deviceClassName", prefix, i, j), sub.DeviceClassName})
		}
		for _, rf := range refs {
			err := v.Reader.Get(ctx, client.ObjectKey{Name: rf.class}, &resourcev1.DeviceClass{})
			switch {
			case err == nil:
			case apierrors.IsNotFound(err):
				if known == nil {
					known = v.classes(ctx)
				}
				problems = append(problems, fmt.Sprintf("%s: device class %q does not exist (device classes here: %s); fix the name or create the DeviceClass first",
					rf.field, rf.class, strings.Join(known, ", ")))
			default:
				// Cannot tell: let the scheduler report it.
				return admission.Allowed("")
			}
		}
	}
	if len(problems) > 0 {
		return admission.Denied(strings.Join(problems, "; "))
	}
	return admission.Allowed("")
}

func (v *Validator) classes(ctx context.Context) []string {
	var list resourcev1.DeviceClassList
	if err := v.Reader.List(ctx, &list); err != nil || len(list.Items) == 0 {
		return []string{"none"}
	}
	names := make([]string, 0, len(list.Items))
	for _, c := range list.Items {
		names = append(names, c.Name)
	}
	sort.Strings(names)
	return names
}

// Configuration registers the webhook for claims and claim templates. It
// fails open: the check is a convenience (the scheduler reports the same
// problem later), not a guard.
func Configuration(clientConfig admissionregistrationv1.WebhookClientConfig) *admissionregistrationv1.ValidatingWebhookConfiguration {
	none := admissionregistrationv1.SideEffectClassNone
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         "deviceclasses.resource.strata.dev",
			ClientConfig: clientConfig,
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{"resource.k8s.io"}, APIVersions: []string{"v1"},
					Resources: []string{"resourceclaims", "resourceclaimtemplates"}, Scope: ptr.To(admissionregistrationv1.NamespacedScope)},
			}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
			SideEffects:             &none,
			TimeoutSeconds:          ptr.To[int32](5),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
}

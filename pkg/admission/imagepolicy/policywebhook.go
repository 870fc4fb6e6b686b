package imagepolicy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	securityv1 "github.com/strata-dev/strata/api/security/v1alpha1"
)

// PolicyValidator refuses ClusterImagePolicies whose globs or inline keys
// do not parse, which the CRD's OpenAPI schema cannot express.
func PolicyValidator() admission.Handler {
	return admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
			return admission.Allowed("")
		}
		var cip securityv1.ClusterImagePolicy
		if err := json.Unmarshal(req.Object.Raw, &cip); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode ClusterImagePolicy: %w", err))
		}
		if errs := ValidateSpec(&cip.Spec); len(errs) > 0 {
			return admission.Denied(fmt.Sprintf("ClusterImagePolicy %q is invalid: %v", cip.Name, errs.ToAggregate()))
		}
		return admission.Allowed("")
	})
}

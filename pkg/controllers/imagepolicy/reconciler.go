// Package imagepolicy reports whether each ClusterImagePolicy can be
// enforced: its Ready condition says which glob or key did not load and
// how to fix it. Enforcement itself is the admission webhook's job
// (pkg/admission/imagepolicy); both compile policies the same way.
package imagepolicy

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	securityv1 "github.com/strata-dev/strata/api/security/v1alpha1"
	admission "github.com/strata-dev/strata/pkg/admission/imagepolicy"
)

// Reconciler sets ClusterImagePolicy status.
type Reconciler struct {
	Client  client.Client
	Secrets admission.SecretKeyReader
	// Resync is how often policies with keys in Secrets are checked again,
	// since a Secret can change or vanish without the policy changing.
	Resync time.Duration
}

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&securityv1.ClusterImagePolicy{}).
		Named("clusterimagepolicy").
		Complete(r)
}

// Reconcile compiles the policy and records the outcome in its Ready
// condition.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var cip securityv1.ClusterImagePolicy
	if err := r.Client.Get(ctx, req.NamespacedName, &cip); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	p := admission.Compile(ctx, &cip, r.Secrets)
	cond := metav1.Condition{
		Type:               securityv1.ConditionReady,
		Status:             metav1.ConditionTrue,
		Reason:             securityv1.ReasonLoaded,
		Message:            fmt.Sprintf("%d image patterns and %d keys loaded", len(cip.Spec.Images), len(cip.Spec.Authorities)),
		ObservedGeneration: cip.Generation,
	}
	if reason, err := p.Problem(); err != nil {
		cond.Status, cond.Reason = metav1.ConditionFalse, reason
		cond.Message = err.Error()
		if p.Usable() {
			cond.Message += " (images are verified with the keys that did load)"
		} else {
			cond.Message += " (no key loaded: every image this policy covers fails it)"
		}
	}
	before := cip.DeepCopy()
	cip.Status.ObservedGeneration = cip.Generation
	meta.SetStatusCondition(&cip.Status.Conditions, cond)
	// Periodic resyncs mostly find nothing new: write only changes.
	if !equality.Semantic.DeepEqual(before.Status, cip.Status) {
		if err := r.Client.Status().Patch(ctx, &cip, client.MergeFrom(before)); err != nil {
			return ctrl.Result{}, fmt.Errorf("update status of ClusterImagePolicy %s: %w", cip.Name, err)
		}
	}
	if p.UsesSecrets() {
		return ctrl.Result{RequeueAfter: r.Resync}, nil
	}
	return ctrl.Result{}, nil
}

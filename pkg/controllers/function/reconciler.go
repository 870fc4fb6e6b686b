// Package function reconciles Functions into a Deployment and a Service
// and reports their state; the serverless gateway and autoscaler
// (pkg/serverless) own the replica count.
package function

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	servingv1 "github.com/strata-dev/strata/api/serving/v1alpha1"
)

// Problem is a reason a function cannot answer that only the serving side
// knows (the wasm host failed to fetch or compile its module, or its
// module keeps failing requests).
type Problem struct {
	Reason, Message string
}

// Reconciler makes each Function's Deployment and Service and writes its
// status.
type Reconciler struct {
	Client client.Client
	// Domain and GatewayPort make the URL in status.
	Domain      string
	GatewayPort int
	// TLS says the gateway serves HTTPS.
	TLS bool
	// Problems reports serving-side problems of a function; nil if none.
	Problems func(types.NamespacedName) *Problem
	// Changed delivers functions whose Problems changed.
	Changed <-chan event.TypedGenericEvent[*servingv1.Function]
}

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&servingv1.Function{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		// Pods tell why replicas do not become ready (image pulls, crashes).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
			name := o.GetLabels()[LabelFunction]
			if name == "" {
				return nil
			}
			return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
		})).
		Named("function")
	if r.Changed != nil {
		b = b.WatchesRawSource(source.Channel(r.Changed, &handler.TypedEnqueueRequestForObject[*servingv1.Function]{}))
	}
	return b.Complete(r)
}

// Reconcile is level-based: it computes everything from the Function and
// what exists now.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var fn servingv1.Function
	if err := r.Client.Get(ctx, req.NamespacedName, &fn); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !fn.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	status := fn.Status.DeepCopy()
	status.ObservedGeneration = fn.Generation
	status.URL = URL(&fn, r.Domain, r.GatewayPort, r.TLS)

	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: fn.Namespace, Name: fn.Name}}
	_, svcErr := controllerutil.CreateOrUpdate(ctx, r.Client, svc, func() error {
		mutateService(svc, &fn)
		return controllerutil.SetControllerReference(&fn, svc, r.Client.Scheme())
	})
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: fn.Namespace, Name: fn.Name}}
	_, depErr := controllerutil.CreateOrUpdate(ctx, r.Client, dep, func() error {
		mutateDeployment(dep, &fn)
		return controllerutil.SetControllerReference(&fn, dep, r.Client.Scheme())
	})

	for _, err := range []error{depErr, svcErr} {
		if err != nil && !refused(err) {
			// A conflict with the autoscaler's scale change, or the API
			// being unavailable: try again, the status stays as it was.
			return ctrl.Result{}, fmt.Errorf("function %s: %w", req.NamespacedName, err)
		}
	}
	cond := metav1.Condition{Type: servingv1.ConditionReady, ObservedGeneration: fn.Generation}
	switch {
	case depErr != nil || svcErr != nil:
		err := depErr
		if err == nil {
			err = svcErr
		}
		cond.Status, cond.Reason = metav1.ConditionFalse, servingv1.ReasonRejected
		cond.Message = fmt.Sprintf("cannot create the function's Deployment or Service: %v", err)
		status.Replicas, status.DesiredReplicas = 0, 0
	default:
		status.Replicas = dep.Status.ReadyReplicas
		status.DesiredReplicas = ptrDeref(dep.Spec.Replicas)
		problem, err := r.problem(ctx, &fn, dep)
		if err != nil {
			return ctrl.Result{}, err
		}
		switch {
		case problem != nil:
			cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, problem.Reason, problem.Message
		case status.Replicas > 0:
			cond.Status, cond.Reason = metav1.ConditionTrue, servingv1.ReasonReady
			cond.Message = fmt.Sprintf("%d replica(s) ready", status.Replicas)
		case status.DesiredReplicas == 0:
			cond.Status, cond.Reason = metav1.ConditionTrue, servingv1.ReasonScaledToZero
			cond.Message = "scaled to zero; the next request starts it"
		default:
			cond.Status, cond.Reason = metav1.ConditionUnknown, servingv1.ReasonDeploying
			cond.Message = fmt.Sprintf("waiting for %d replica(s) to become ready", status.DesiredReplicas)
		}
	}
	meta.SetStatusCondition(&status.Conditions, cond)
	if !apiequality.Semantic.DeepEqual(status, &fn.Status) {
		fn.Status = *status
		if err := r.Client.Status().Update(ctx, &fn); err != nil {
			return ctrl.Result{}, fmt.Errorf("update status of function %s: %w", req.NamespacedName, err)
		}
	}
	if depErr != nil {
		return ctrl.Result{}, fmt.Errorf("function %s: %w", req.NamespacedName, depErr)
	}
	return ctrl.Result{}, svcErr
}

// problem finds why the function cannot answer, if something says so:
// the Deployment's ReplicaFailure (admission refused its pods), a pod that
// cannot pull its image or keeps crashing, or the serving side.
func (r *Reconciler) problem(ctx context.Context, fn *servingv1.Function, dep *appsv1.Deployment) (*Problem, error) {
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
			return &Problem{Reason: servingv1.ReasonRejected, Message: c.Message}, nil
		}
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(fn.Namespace), client.MatchingLabels(labels(fn))); err != nil {
		return nil, fmt.Errorf("list pods of function %s/%s: %w", fn.Namespace, fn.Name, err)
	}
	for i := range pods.Items {
		if p := podProblem(&pods.Items[i]); p != nil {
			return p, nil
		}
	}
	if r.Problems != nil {
		return r.Problems(types.NamespacedName{Namespace: fn.Namespace, Name: fn.Name}), nil
	}
	return nil, nil
}

// refused says the API server refused an object for what it is (an
// admission webhook denied it, or it is invalid), so retrying the same
// object cannot help.
func refused(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)
}

func podProblem(pod *corev1.Pod) *Problem {
	if !pod.DeletionTimestamp.IsZero() {
		return nil
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
				return &Problem{Reason: servingv1.ReasonImagePull, Message: fmt.Sprintf("pod %s: %s: %s", pod.Name, w.Reason, w.Message)}
			case "CrashLoopBackOff", "CreateContainerError", "RunContainerError", "CreateContainerConfigError":
				msg := w.Message
				if t := cs.LastTerminationState.Terminated; t != nil {
					msg = strings.TrimSpace(fmt.Sprintf("%s (last exit %d, %s: %s)", msg, t.ExitCode, t.Reason, t.Message))
				}
				return &Problem{Reason: servingv1.ReasonCrashing, Message: fmt.Sprintf("pod %s: %s: %s", pod.Name, w.Reason, msg)}
			}
		}
	}
	return nil
}

func ptrDeref(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

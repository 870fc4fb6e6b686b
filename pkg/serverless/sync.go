package serverless

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	servingv1 "github.com/strata-dev/strata/api/serving/v1alpha1"
	"github.com/strata-dev/strata/pkg/controllers/function"
)

// syncer keeps the gateway's view of each function (ready endpoints,
// settings, problems) and the wasm host's modules level with the API.
type syncer struct {
	client  client.Client
	gateway *Gateway
	host    *WasmHost
}

func (s *syncer) setup(mgr ctrl.Manager) error {
	byService := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
		return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetLabels()[discoveryv1.LabelServiceName]}}}
	})
	isFunctionSlice := predicate.NewPredicateFuncs(func(o client.Object) bool {
		_, ok := o.GetLabels()[function.LabelFunction]
		return ok && o.GetLabels()[discoveryv1.LabelServiceName] != ""
	})
	return ctrl.NewControllerManagedBy(mgr).
		For(&servingv1.Function{}).
		Owns(&appsv1.Deployment{}).
		Watches(&discoveryv1.EndpointSlice{}, byService, builder.WithPredicates(isFunctionSlice)).
		Named("function-gateway").
		Complete(s)
}

func (s *syncer) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := req.NamespacedName
	var fn servingv1.Function
	if err := s.client.Get(ctx, key, &fn); err != nil {
		if apierrors.IsNotFound(err) {
			s.gateway.Remove(key)
			s.host.Remove(key)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	var dep appsv1.Deployment
	hasDep := true
	if err := s.client.Get(ctx, key, &dep); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		hasDep = false
	}
	var slices discoveryv1.EndpointSliceList
	if err := s.client.List(ctx, &slices, client.InNamespace(key.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: key.Name}); err != nil {
		return ctrl.Result{}, fmt.Errorf("list endpoints of function %s: %w", key, err)
	}
	snap := Snapshot{
		Runtime:   fn.Spec.Runtime,
		Timeout:   function.TimeoutOf(&fn).Duration,
		Policy:    policyOf(&fn),
		Endpoints: readyEndpoints(slices.Items),
		Problem:   statusProblem(&fn),
	}
	if hasDep {
		snap.Ready = dep.Status.ReadyReplicas
		snap.Desired = 1
		if dep.Spec.Replicas != nil {
			snap.Desired = *dep.Spec.Replicas
		}
	}
	s.gateway.Update(key, snap)

	if fn.Spec.Runtime == servingv1.RuntimeWasm && hasDep && len(dep.Spec.Template.Spec.Containers) == 1 {
		s.host.Ensure(key, hostConfig(&fn, &dep))
	} else {
		s.host.Remove(key)
	}
	return ctrl.Result{}, nil
}

// hostConfig runs the image of the Deployment's pod template: the one the
// admission webhooks verified and pinned to its digest. An image that
// admission refused never reaches the template, so the host runs nothing
// a pod could not.
func hostConfig(fn *servingv1.Function, dep *appsv1.Deployment) HostConfig {
	c := dep.Spec.Template.Spec.Containers[0]
	cfg := HostConfig{Image: c.Image, Port: int(fn.Spec.Port), Timeout: function.TimeoutOf(fn).Duration}
	for _, e := range c.Env {
		cfg.Env = append(cfg.Env, e.Name+"="+e.Value)
	}
	if m, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		cfg.MemoryLimit = uint64(m.Value())
	}
	return cfg
}

func policyOf(fn *servingv1.Function) ScalePolicy {
	p := ScalePolicy{Min: fn.Spec.MinReplicas(), Max: fn.Spec.MaxReplicas(), Target: float64(fn.Spec.Target()), Grace: 30 * time.Second}
	if d := fn.Spec.ScaleToZeroGracePeriod; d != nil {
		p.Grace = d.Duration
	}
	if d := fn.Spec.StableWindow; d != nil {
		p.StableWindow = d.Duration
	}
	return p
}

// statusProblem is the reason in the Function's status that the function
// cannot answer, if any.
func statusProblem(fn *servingv1.Function) *function.Problem {
	c := meta.FindStatusCondition(fn.Status.Conditions, servingv1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionFalse {
		return nil
	}
	return &function.Problem{Reason: c.Reason, Message: c.Message}
}

// readyEndpoints lists ready, not terminating, replicas as ip:port.
func readyEndpoints(slices []discoveryv1.EndpointSlice) map[string]string {
	out := map[string]string{}
	for _, sl := range slices {
		var port int32
		for _, p := range sl.Ports {
			if p.Port != nil && (p.Name == nil || *p.Name == "http") {
				port = *p.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range sl.Endpoints {
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			terminating := ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
			if !ready || terminating || len(ep.Addresses) == 0 {
				continue
			}
			pod := ep.Addresses[0]
			if ep.TargetRef != nil {
				pod = ep.TargetRef.Name
			}
			out[pod] = net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(port)))
		}
	}
	return out
}

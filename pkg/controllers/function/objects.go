package function

import (
	"fmt"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	servingv1 "github.com/strata-dev/strata/api/serving/v1alpha1"
)

// LabelFunction marks the Deployment, Service and pods of a Function with
// its name.
const LabelFunction = "serving.strata.dev/function"

// AnnotationImage records on the Deployment the spec.image its pod
// template was made from (the template holds the image pinned to a digest).
const AnnotationImage = "serving.strata.dev/image"

// ContainerName is the function's container in its pods.
const ContainerName = "function"

// WasmRuntimeClass runs wasm functions' pods.
const WasmRuntimeClass = "wasm"

// drainSeconds keeps a terminating pod serving while the gateway learns
// that it is going, so no request is sent to a pod that has stopped.
const drainSeconds = 2

// DefaultTimeout bounds a request when spec.timeout is unset.
const DefaultTimeout = 30

func labels(fn *servingv1.Function) map[string]string {
	return map[string]string{LabelFunction: fn.Name}
}

// podTemplate is the function's pod. It runs under Pod Security
// "restricted" unchanged.
func podTemplate(fn *servingv1.Function) corev1.PodTemplateSpec {
	port := fn.Spec.Port
	if port == 0 {
		port = 8080
	}
	// PORT tells the program where to listen (Knative's convention),
	// unless the function sets it itself.
	var env []corev1.EnvVar
	if !slices.ContainsFunc(fn.Spec.Env, func(e servingv1.EnvVar) bool { return e.Name == "PORT" }) {
		env = append(env, corev1.EnvVar{Name: "PORT", Value: strconv.Itoa(int(port))})
	}
	for _, e := range fn.Spec.Env {
		env = append(env, corev1.EnvVar{Name: e.Name, Value: e.Value})
	}
	var runtimeClass *string
	if fn.Spec.Runtime == servingv1.RuntimeWasm {
		runtimeClass = ptr.To(WasmRuntimeClass)
		env = append(env, corev1.EnvVar{Name: "STRATA_WASM_HTTP_PORT", Value: strconv.Itoa(int(port))})
	}
	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}}
	if fn.Spec.Memory != nil {
		res.Limits = corev1.ResourceList{corev1.ResourceMemory: *fn.Spec.Memory}
		res.Requests[corev1.ResourceMemory] = *fn.Spec.Memory
	}
	timeout := int64(TimeoutOf(fn).Seconds())
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels(fn)},
		Spec: corev1.PodSpec{
			RuntimeClassName: runtimeClass,
			// In-flight requests finish within the timeout after SIGTERM.
			TerminationGracePeriodSeconds: ptr.To(timeout + drainSeconds + 1),
			EnableServiceLinks:            ptr.To(false),
			AutomountServiceAccountToken:  ptr.To(false),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](65532),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:      ContainerName,
				Image:     fn.Spec.Image,
				Ports:     []corev1.ContainerPort{{Name: "http", ContainerPort: port}},
				Env:       env,
				Resources: res,
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}},
					PeriodSeconds: 1, FailureThreshold: 1,
				},
				Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: drainSeconds}}},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
}

// TimeoutOf is the function's request timeout.
func TimeoutOf(fn *servingv1.Function) metav1.Duration {
	if fn.Spec.Timeout != nil && fn.Spec.Timeout.Duration > 0 {
		return *fn.Spec.Timeout
	}
	return metav1.Duration{Duration: DefaultTimeout * 1e9}
}

// mutateDeployment makes d run fn. The replica count belongs to the
// autoscaler once the Deployment exists; here it is only created and kept
// within [minScale, maxScale].
func mutateDeployment(d *appsv1.Deployment, fn *servingv1.Function) {
	if d.Labels == nil {
		d.Labels = map[string]string{}
	}
	d.Labels[LabelFunction] = fn.Name
	if d.CreationTimestamp.IsZero() {
		d.Spec.Replicas = ptr.To(fn.Spec.MinReplicas())
		d.Spec.Selector = &metav1.LabelSelector{MatchLabels: labels(fn)}
	}
	r := ptr.Deref(d.Spec.Replicas, 0)
	r = max(r, fn.Spec.MinReplicas())
	r = min(r, fn.Spec.MaxReplicas())
	d.Spec.Replicas = ptr.To(r)
	d.Spec.RevisionHistoryLimit = ptr.To[int32](2)
	d.Spec.Strategy = appsv1.DeploymentStrategy{
		Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{
			MaxUnavailable: ptr.To(intstr.FromInt32(0)),
			MaxSurge:       ptr.To(intstr.FromString("25%")),
		},
	}
	want := podTemplate(fn)
	// Keep what admission wrote (the image pinned to the digest it
	// verified) while spec.image stays the same; a new image replaces it
	// and is verified and pinned again.
	if cur := d.Spec.Template.Spec.Containers; len(cur) == 1 && d.Annotations[AnnotationImage] == fn.Spec.Image {
		want.Spec.Containers[0].Image = cur[0].Image
	}
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[AnnotationImage] = fn.Spec.Image
	d.Spec.Template.Labels = want.Labels
	d.Spec.Template.Spec = mergePodSpec(d.Spec.Template.Spec, want.Spec)
}

// mergePodSpec keeps the fields the API server defaults, so that an
// unchanged function does not roll its pods.
func mergePodSpec(cur, want corev1.PodSpec) corev1.PodSpec {
	if len(cur.Containers) == 1 {
		c := cur.Containers[0]
		w := want.Containers[0]
		c.Name, c.Image, c.Ports, c.Env, c.Resources = w.Name, w.Image, w.Ports, w.Env, w.Resources
		c.ReadinessProbe, c.Lifecycle, c.SecurityContext = w.ReadinessProbe, w.Lifecycle, w.SecurityContext
		want.Containers = []corev1.Container{c}
		if want.Containers[0].ReadinessProbe != nil && cur.Containers[0].ReadinessProbe != nil {
			p := *cur.Containers[0].ReadinessProbe
			p.ProbeHandler, p.PeriodSeconds, p.FailureThreshold = w.ReadinessProbe.ProbeHandler, w.ReadinessProbe.PeriodSeconds, w.ReadinessProbe.FailureThreshold
			want.Containers[0].ReadinessProbe = &p
		}
	}
	cur.RuntimeClassName = want.RuntimeClassName
	cur.TerminationGracePeriodSeconds = want.TerminationGracePeriodSeconds
	cur.EnableServiceLinks = want.EnableServiceLinks
	cur.AutomountServiceAccountToken = want.AutomountServiceAccountToken
	cur.SecurityContext = want.SecurityContext
	cur.Containers = want.Containers
	return cur
}

func mutateService(s *corev1.Service, fn *servingv1.Function) {
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.Labels[LabelFunction] = fn.Name
	s.Spec.Selector = labels(fn)
	s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}}
}

// URL is where the gateway serves fn.
func URL(fn *servingv1.Function, domain string, port int, tls bool) string {
	host := fmt.Sprintf("%s.%s.%s", fn.Name, fn.Namespace, domain)
	scheme, defaultPort := "http", 80
	if tls {
		scheme, defaultPort = "https", 443
	}
	if port != defaultPort {
		host += ":" + strconv.Itoa(port)
	}
	return scheme + "://" + host + "/"
}

package function

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	servingv1 "github.com/strata-dev/strata/api/serving/v1alpha1"
)

func TestReconcile(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = servingv1.AddToScheme(scheme)
	key := types.NamespacedName{Namespace: "default", Name: "fn"}
	tests := []struct {
		name       string
		runtime    servingv1.Runtime
		pod        *corev1.Pod
		problem    *Problem
		wantReason string
	}{
		{name: "at zero", runtime: servingv1.RuntimeWasm, wantReason: servingv1.ReasonScaledToZero},
		{name: "image pull failing", runtime: servingv1.RuntimeContainer, wantReason: servingv1.ReasonImagePull, pod: &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "fn-1", Labels: map[string]string{LabelFunction: "fn"}},
			Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: ContainerName,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "not found"}}}}},
		}},
		{name: "serving-side problem", runtime: servingv1.RuntimeWasm, problem: &Problem{Reason: servingv1.ReasonInvalidModule, Message: "bad"}, wantReason: servingv1.ReasonInvalidModule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn := &servingv1.Function{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "fn", Generation: 1},
				Spec: servingv1.FunctionSpec{Image: "localhost:5000/x:v1", Runtime: tt.runtime, Port: 8080}}
			objs := []client.Object{fn}
			if tt.pod != nil {
				objs = append(objs, tt.pod)
			}
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(fn).Build()
			r := &Reconciler{Client: c, Domain: "localhost", GatewayPort: 8088,
				Problems: func(types.NamespacedName) *Problem { return tt.problem }}
			for i := 0; i < 2; i++ { // idempotent
				if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil {
					t.Fatal(err)
				}
			}
			var got servingv1.Function
			if err := c.Get(context.Background(), key, &got); err != nil {
				t.Fatal(err)
			}
			cond := meta.FindStatusCondition(got.Status.Conditions, servingv1.ConditionReady)
			if cond == nil || cond.Reason != tt.wantReason {
				t.Fatalf("Ready condition %+v, want reason %s", cond, tt.wantReason)
			}
			if got.Status.URL != "http://fn.default.localhost:8088/" {
				t.Errorf("URL %q", got.Status.URL)
			}
			var dep appsv1.Deployment
			if err := c.Get(context.Background(), key, &dep); err != nil {
				t.Fatal(err)
			}
			if ptr.Deref(dep.Spec.Replicas, -1) != 0 {
				t.Errorf("replicas %v, want 0 (minScale)", dep.Spec.Replicas)
			}
			wantClass := tt.runtime == servingv1.RuntimeWasm
			if (dep.Spec.Template.Spec.RuntimeClassName != nil) != wantClass {
				t.Errorf("runtimeClassName %v for runtime %s", dep.Spec.Template.Spec.RuntimeClassName, tt.runtime)
			}
			var svc corev1.Service
			if err := c.Get(context.Background(), key, &svc); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The autoscaler's replica count survives reconciles; the controller only
// clamps it to [minScale, maxScale], and keeps the admission-pinned image.
func TestMutateDeploymentKeepsScaleAndPinnedImage(t *testing.T) {
	fn := &servingv1.Function{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "fn"},
		Spec: servingv1.FunctionSpec{Image: "localhost:5000/x:v1", Port: 8080, MaxScale: ptr.To[int32](3)}}
	d := &appsv1.Deployment{}
	mutateDeployment(d, fn)
	d.CreationTimestamp = metav1.Now()
	d.Spec.Replicas = ptr.To[int32](2)
	d.Spec.Template.Spec.Containers[0].Image = "localhost:5000/x@sha256:abc"
	mutateDeployment(d, fn)
	if *d.Spec.Replicas != 2 || d.Spec.Template.Spec.Containers[0].Image != "localhost:5000/x@sha256:abc" {
		t.Fatalf("replicas %d image %s", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image)
	}
	d.Spec.Replicas = ptr.To[int32](9)
	fn.Spec.Image = "localhost:5000/x:v2"
	mutateDeployment(d, fn)
	if *d.Spec.Replicas != 3 || d.Spec.Template.Spec.Containers[0].Image != "localhost:5000/x:v2" {
		t.Fatalf("after change: replicas %d image %s", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image)
	}
}

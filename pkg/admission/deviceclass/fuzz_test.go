package deviceclass

import (
	"context"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// FuzzValidator: any claim or template body gets an answer: allowed,
// denied naming the field of every unknown class, or a 400.
func FuzzValidator(f *testing.F) {
	f.Add("ResourceClaim", `{"spec":{"devices":{"requests":[{"name":"r","exactly":{"deviceClassName":"gpu.strata.dev"}}]}}}`)
	f.Add("ResourceClaimTemplate", `{"spec":{"spec":{"devices":{"requests":[{"name":"r","firstAvailable":[{"name":"a","deviceClassName":"tpu"}]}]}}}}`)
	f.Add("ResourceClaim", `{"spec":{"devices":{"requests":[{"name":"r"}]}}}`)
	f.Add("ResourceClaim", `{"spec":`)
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(&resourcev1.DeviceClass{ObjectMeta: metav1.ObjectMeta{Name: "gpu.strata.dev"}}).Build()
	v := &Validator{Reader: c, Decoder: admission.NewDecoder(scheme)}
	f.Fuzz(func(t *testing.T, kind, object string) {
		resp := v.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			Kind: metav1.GroupVersionKind{Group: "resource.k8s.io", Version: "v1", Kind: kind}, Object: runtime.RawExtension{Raw: []byte(object)}}})
		if !resp.Allowed && resp.Result.Code == 403 && !strings.Contains(resp.Result.Message, "deviceClassName") {
			t.Fatalf("denial that names no field: %q", resp.Result.Message)
		}
	})
}

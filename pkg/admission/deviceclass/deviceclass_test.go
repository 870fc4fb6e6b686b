package deviceclass

import (
	"context"
	"encoding/json"
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

func TestValidator(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(&resourcev1.DeviceClass{ObjectMeta: metav1.ObjectMeta{Name: "gpu.strata.dev"}}).Build()
	v := &Validator{Reader: c, Decoder: admission.NewDecoder(scheme)}
	claim := func(classes ...string) resourcev1.ResourceClaimSpec {
		var reqs []resourcev1.DeviceRequest
		for _, cl := range classes {
			reqs = append(reqs, resourcev1.DeviceRequest{Name: "r", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: cl}})
		}
		return resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: reqs}}
	}
	tests := []struct {
		name    string
		kind    string
		obj     runtime.Object
		wantErr string
	}{
		{"known class", "ResourceClaim", &resourcev1.ResourceClaim{Spec: claim("gpu.strata.dev")}, ""},
		{"unknown class", "ResourceClaim", &resourcev1.ResourceClaim{Spec: claim("gpu.strata.dev", "gpu.example.com")},
			`spec.devices.requests[1].exactly.deviceClassName: device class "gpu.example.com" does not exist (device classes here: gpu.strata.dev)`},
		{"unknown class in a template", "ResourceClaimTemplate", &resourcev1.ResourceClaimTemplate{Spec: resourcev1.ResourceClaimTemplateSpec{Spec: claim("nope")}},
			`spec.spec.devices.requests[0].exactly.deviceClassName: device class "nope" does not exist`},
		{"first available", "ResourceClaim", &resourcev1.ResourceClaim{Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
			Name: "r", FirstAvailable: []resourcev1.DeviceSubRequest{{Name: "a", DeviceClassName: "gpu.strata.dev"}, {Name: "b", DeviceClassName: "tpu"}}}}}}},
			`spec.devices.requests[0].firstAvailable[1].deviceClassName: device class "tpu" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, _ := json.Marshal(tt.obj)
			resp := v.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				Kind: metav1.GroupVersionKind{Group: "resource.k8s.io", Version: "v1", Kind: tt.kind}, Object: runtime.RawExtension{Raw: raw}}})
			if tt.wantErr == "" {
				if !resp.Allowed {
					t.Fatalf("denied: %s", resp.Result.Message)
				}
				return
			}
			if resp.Allowed || !strings.Contains(resp.Result.Message, tt.wantErr) {
				t.Fatalf("got allowed=%v %q, want denial with %q", resp.Allowed, resp.Result.Message, tt.wantErr)
			}
		})
	}
}

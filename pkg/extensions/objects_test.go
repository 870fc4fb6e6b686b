package extensions

import (
	"context"
	"errors"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	resourcev1 "k8s.io/api/resource/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/strata-dev/strata/pkg/dra"
)

func TestEnsureGPUObjects(t *testing.T) {
	ctx := context.Background()
	// An older strata's policy, with a mutation since changed, and a
	// priority class an administrator described differently.
	old, _ := dra.ClaimProtection()
	old.Spec.Mutations = nil
	edited := &schedulingv1.PriorityClass{}
	edited.Name, edited.Value, edited.Description = PriorityBestEffort, -1000, "ours"
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(old, edited).Build()
	for i := range 2 { // a restart finds everything in place
		if err := ensureGPUObjects(ctx, c); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	want, wantBinding := dra.ClaimProtection()
	got := &admissionregistrationv1.MutatingAdmissionPolicy{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(want), got); err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.Mutations) != 1 || got.Spec.Mutations[0].JSONPatch.Expression != want.Spec.Mutations[0].JSONPatch.Expression {
		t.Errorf("policy not updated: mutations %+v", got.Spec.Mutations)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(wantBinding), &admissionregistrationv1.MutatingAdmissionPolicyBinding{}); err != nil {
		t.Errorf("binding: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: dra.DriverName}, &resourcev1.DeviceClass{}); err != nil {
		t.Errorf("DeviceClass: %v", err)
	}
	pc := &schedulingv1.PriorityClass{}
	if err := c.Get(ctx, client.ObjectKey{Name: PriorityLatencySensitive}, pc); err != nil || pc.Value != 100000 {
		t.Errorf("PriorityClass %s: %v %v", PriorityLatencySensitive, pc.Value, err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: PriorityBestEffort}, pc); err != nil || pc.Description != "ours" {
		t.Errorf("PriorityClass %s should be kept as the administrator left it: %q %v", PriorityBestEffort, pc.Description, err)
	}
}

func TestEnsureGPUObjectsReportsErrors(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*admissionregistrationv1.MutatingAdmissionPolicy); ok {
				return apierrors.NewForbidden(admissionregistrationv1.Resource("mutatingadmissionpolicies"), dra.ClaimProtectionPolicy, errors.New("no"))
			}
			return c.Create(ctx, obj, opts...)
		},
	}).Build()
	err := ensureGPUObjects(context.Background(), c)
	if err == nil || !apierrors.IsForbidden(err) {
		t.Fatalf("err %v, want the Forbidden create error wrapped", err)
	}
}

package server

import (
	"context"
	"errors"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/strata-dev/strata/pkg/dra"
)

func TestEnsureGPUObjects(t *testing.T) {
	ctx := context.Background()
	// An older strata's policy, with a mutation since changed.
	old, _ := dra.ClaimProtection()
	old.Spec.Mutations = nil
	old.ResourceVersion = "7"
	client := fake.NewClientset(old)
	for i := range 2 { // a restart finds everything in place
		if err := ensureGPUObjects(ctx, client); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	want, wantBinding := dra.ClaimProtection()
	got, err := client.AdmissionregistrationV1().MutatingAdmissionPolicies().Get(ctx, want.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.Mutations) != 1 || got.Spec.Mutations[0].JSONPatch.Expression != want.Spec.Mutations[0].JSONPatch.Expression {
		t.Errorf("policy not updated: mutations %+v", got.Spec.Mutations)
	}
	if _, err := client.AdmissionregistrationV1().MutatingAdmissionPolicyBindings().Get(ctx, wantBinding.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("binding: %v", err)
	}
	if _, err := client.ResourceV1().DeviceClasses().Get(ctx, dra.DriverName, metav1.GetOptions{}); err != nil {
		t.Errorf("DeviceClass: %v", err)
	}
	for _, pc := range []string{PriorityLatencySensitive, PriorityBestEffort} {
		if _, err := client.SchedulingV1().PriorityClasses().Get(ctx, pc, metav1.GetOptions{}); err != nil {
			t.Errorf("PriorityClass %s: %v", pc, err)
		}
	}
}

func TestEnsureGPUObjectsReportsErrors(t *testing.T) {
	client := fake.NewClientset()
	client.PrependReactor("create", "mutatingadmissionpolicies", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(admissionregistrationv1.Resource("mutatingadmissionpolicies"), dra.ClaimProtectionPolicy, errors.New("no"))
	})
	err := ensureGPUObjects(context.Background(), client)
	if err == nil || !apierrors.IsForbidden(err) {
		t.Fatalf("err %v, want the Forbidden create error wrapped", err)
	}
}

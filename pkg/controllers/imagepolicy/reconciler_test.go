package imagepolicy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	securityv1 "github.com/strata-dev/strata/api/security/v1alpha1"
)

type secrets map[string]string

func (s secrets) SecretKey(_ context.Context, ref securityv1.SecretKeyReference) ([]byte, error) {
	if pem, ok := s[ref.Namespace+"/"+ref.Name]; ok {
		return []byte(pem), nil
	}
	return nil, errors.New("secret " + ref.Namespace + "/" + ref.Name + " not found")
}

func TestReconcileSetsReady(t *testing.T) {
	sv, _, err := signature.NewDefaultECDSASignerVerifier()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := sv.PublicKey()
	pem, _ := cryptoutils.MarshalPublicKeyToPEM(pub)
	inline := securityv1.KeySource{Data: string(pem)}
	fromSecret := func(name string) securityv1.KeySource {
		return securityv1.KeySource{SecretRef: &securityv1.SecretKeyReference{Namespace: "ns", Name: name}}
	}
	tests := []struct {
		name       string
		keys       []securityv1.KeySource
		wantStatus metav1.ConditionStatus
		wantReason string
		wantMsg    string
		requeue    bool
	}{
		{name: "inline key", keys: []securityv1.KeySource{inline}, wantStatus: metav1.ConditionTrue, wantReason: securityv1.ReasonLoaded},
		{name: "key in a secret", keys: []securityv1.KeySource{fromSecret("present")}, wantStatus: metav1.ConditionTrue, wantReason: securityv1.ReasonLoaded, requeue: true},
		{name: "missing secret", keys: []securityv1.KeySource{fromSecret("gone")}, wantStatus: metav1.ConditionFalse, wantReason: securityv1.ReasonKeyNotFound,
			wantMsg: "no key loaded: every image this policy covers fails it", requeue: true},
		{name: "one of two keys missing", keys: []securityv1.KeySource{inline, fromSecret("gone")}, wantStatus: metav1.ConditionFalse, wantReason: securityv1.ReasonKeyNotFound,
			wantMsg: "verified with the keys that did load", requeue: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			if err := securityv1.AddToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			cip := &securityv1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: 3}, Spec: securityv1.ClusterImagePolicySpec{
				Images: []securityv1.ImagePattern{{Glob: "r.io/**"}},
			}}
			for _, k := range tt.keys {
				cip.Spec.Authorities = append(cip.Spec.Authorities, securityv1.Authority{Key: k})
			}
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(cip).WithStatusSubresource(cip).Build()
			r := &Reconciler{Client: c, Secrets: secrets{"ns/present": string(pem)}, Resync: time.Minute}
			res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: "p"}})
			if err != nil {
				t.Fatal(err)
			}
			if (res.RequeueAfter > 0) != tt.requeue {
				t.Errorf("RequeueAfter = %v, want requeue %v", res.RequeueAfter, tt.requeue)
			}
			var got securityv1.ClusterImagePolicy
			if err := c.Get(context.Background(), types.NamespacedName{Name: "p"}, &got); err != nil {
				t.Fatal(err)
			}
			cond := meta.FindStatusCondition(got.Status.Conditions, securityv1.ConditionReady)
			if cond == nil || cond.Status != tt.wantStatus || cond.Reason != tt.wantReason || !strings.Contains(cond.Message, tt.wantMsg) {
				t.Fatalf("Ready = %+v, want %s/%s containing %q", cond, tt.wantStatus, tt.wantReason, tt.wantMsg)
			}
			if got.Status.ObservedGeneration != 3 || cond.ObservedGeneration != 3 {
				t.Errorf("observedGeneration not recorded: %+v", got.Status)
			}
			// A second pass over an unchanged policy writes nothing.
			rv := got.ResourceVersion
			if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: "p"}}); err != nil {
				t.Fatal(err)
			}
			_ = c.Get(context.Background(), types.NamespacedName{Name: "p"}, &got)
			if got.ResourceVersion != rv {
				t.Errorf("unchanged status was written again (resourceVersion %s -> %s)", rv, got.ResourceVersion)
			}
		})
	}
}

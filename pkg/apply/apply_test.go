package apply

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestApplyAndCreateOnce(t *testing.T) {
	cm := func(v string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c"}, Data: map[string]string{"k": v}}
	}
	for _, tc := range []struct {
		name     string
		existing *corev1.ConfigMap
		write    func(context.Context, client.Client, client.Object) error
		want     string
	}{
		{"apply creates", nil, Apply, "new"},
		{"apply replaces", cm("old"), Apply, "new"},
		{"create once creates", nil, CreateOnce, "new"},
		{"create once keeps", cm("old"), CreateOnce, "old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme)
			if tc.existing != nil {
				b = b.WithObjects(tc.existing)
			}
			c := b.Build()
			ctx := context.Background()
			for range 2 { // idempotent
				if err := tc.write(ctx, c, cm("new")); err != nil {
					t.Fatal(err)
				}
			}
			got := &corev1.ConfigMap{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "c"}, got); err != nil {
				t.Fatal(err)
			}
			if got.Data["k"] != tc.want {
				t.Fatalf("data %q, want %q", got.Data["k"], tc.want)
			}
		})
	}
}

func TestOwned(t *testing.T) {
	owner := metav1.OwnerReference{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole", Name: "strata", UID: "u-1"}
	c := Owned(fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).Build(), owner)
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c"}}
	for range 2 { // create, then replace: one reference
		if err := Apply(ctx, c, cm.DeepCopy()); err != nil {
			t.Fatal(err)
		}
	}
	got := &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(cm), got); err != nil {
		t.Fatal(err)
	}
	if refs := got.OwnerReferences; len(refs) != 1 || refs[0] != owner {
		t.Fatalf("owner references %+v, want just %+v", refs, owner)
	}
}

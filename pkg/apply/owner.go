package apply

import (
	"context"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Owned returns a client whose creates and updates give every object an
// owner reference to owner (when it has none to it yet). Objects a process
// makes at the cluster level then go with what installed the process: when
// a Helm release deletes its ClusterRole, the garbage collector deletes
// the CRDs, webhook configurations and cluster objects that name it.
func Owned(c client.Client, owner metav1.OwnerReference) client.Client {
	return ownedClient{Client: c, owner: owner}
}

type ownedClient struct {
	client.Client
	owner metav1.OwnerReference
}

func (o ownedClient) own(obj client.Object) {
	refs := obj.GetOwnerReferences()
	if !slices.ContainsFunc(refs, func(r metav1.OwnerReference) bool { return r.UID == o.owner.UID }) {
		obj.SetOwnerReferences(append(refs, o.owner))
	}
}

func (o ownedClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	o.own(obj)
	return o.Client.Create(ctx, obj, opts...)
}

func (o ownedClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	o.own(obj)
	return o.Client.Update(ctx, obj, opts...)
}

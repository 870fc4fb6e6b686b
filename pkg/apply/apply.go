// Package apply is the one way Strata writes the objects it owns into a
// cluster at start: Apply makes the object what this binary says (so a
// newer Strata updates what an older one created), CreateOnce creates an
// object that an administrator may then change (or, for immutable fields,
// that can never change) and leaves an existing one alone.
package apply

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Apply creates obj, or replaces the existing object of its name with it,
// keeping the existing object's resourceVersion.
func Apply(ctx context.Context, c client.Client, obj client.Object) error {
	existing := obj.DeepCopyObject().(client.Object)
	err := c.Get(ctx, client.ObjectKeyFromObject(obj), existing)
	switch {
	case apierrors.IsNotFound(err):
		err = c.Create(ctx, obj)
	case err == nil:
		obj.SetResourceVersion(existing.GetResourceVersion())
		err = c.Update(ctx, obj)
	}
	if err != nil {
		return fmt.Errorf("apply %T %s: %w", obj, obj.GetName(), err)
	}
	return nil
}

// CreateOnce creates obj unless an object of its name exists. It asks
// first: on a restart, a fail-closed webhook for obj's kind may be
// registered but not yet serving, and a Create would be refused instead of
// finding the object.
func CreateOnce(ctx context.Context, c client.Client, obj client.Object) error {
	existing := obj.DeepCopyObject().(client.Object)
	err := c.Get(ctx, client.ObjectKeyFromObject(obj), existing)
	if apierrors.IsNotFound(err) {
		err = c.Create(ctx, obj)
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %T %s: %w", obj, obj.GetName(), err)
	}
	return nil
}

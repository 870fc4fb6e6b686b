// Package crds installs every CustomResourceDefinition Strata serves (the
// generated manifests in config/crd) and waits until the API server
// serves them: the one place CRDs are installed, in-process or on another
// cluster.
package crds

import (
	"context"
	"fmt"
	"io/fs"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/strata-dev/strata/config/crd"
	"github.com/strata-dev/strata/pkg/apply"
)

// All returns the CustomResourceDefinitions in config/crd.
func All() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := fs.Glob(crd.Files, "*.yaml")
	if err != nil {
		return nil, err
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		data, err := crd.Files.ReadFile(f)
		if err != nil {
			return nil, err
		}
		c := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, c); err != nil {
			return nil, fmt.Errorf("CRD %s: %w", f, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// Install creates or updates every CRD and waits until each is established.
// c's scheme must know apiextensions.k8s.io/v1.
func Install(ctx context.Context, c client.Client) error {
	all, err := All()
	if err != nil {
		return err
	}
	for _, want := range all {
		if err := apply.Apply(ctx, c, want); err != nil {
			return fmt.Errorf("install CRD %s: %w", want.Name, err)
		}
		err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			var got apiextensionsv1.CustomResourceDefinition
			if err := c.Get(ctx, client.ObjectKey{Name: want.Name}, &got); err != nil {
				return false, nil
			}
			for _, cond := range got.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s not established: %w", want.Name, err)
		}
	}
	return nil
}

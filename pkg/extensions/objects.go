package extensions

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/strata-dev/strata/pkg/apply"
	"github.com/strata-dev/strata/pkg/dra"
	"github.com/strata-dev/strata/pkg/wasm"
)

// Priority classes for GPU workloads: latency-sensitive inference is
// scheduled first and may preempt best-effort pods; best-effort pods never
// preempt anything.
const (
	PriorityLatencySensitive = "strata-latency-sensitive"
	PriorityBestEffort       = "strata-best-effort"
)

// ensureClusterObjects creates the cluster-wide objects Strata's features
// need, whether or not a node offers them yet.
func ensureClusterObjects(ctx context.Context, c client.Client) error {
	if err := ensureRuntimeClass(ctx, c); err != nil {
		return err
	}
	return ensureGPUObjects(ctx, c)
}

// ensureRuntimeClass creates RuntimeClass wasm, scheduled onto nodes that
// have the wasm shim.
func ensureRuntimeClass(ctx context.Context, c client.Client) error {
	return apply.CreateOnce(ctx, c, &nodev1.RuntimeClass{
		ObjectMeta: metav1.ObjectMeta{Name: wasm.RuntimeHandler},
		Handler:    wasm.RuntimeHandler,
		Scheduling: &nodev1.Scheduling{NodeSelector: map[string]string{wasm.NodeLabel: "true"}},
	})
}

// ensureGPUObjects creates (or updates) the GPU DeviceClass and the claim
// delete-protection policy, and creates the GPU priority classes:
// cluster-wide objects that exist whether or not this node has GPUs
// (claims for an unknown class are refused with a clear error).
func ensureGPUObjects(ctx context.Context, c client.Client) error {
	policy, binding := dra.ClaimProtection()
	for _, obj := range []client.Object{dra.DeviceClass(), policy, binding} {
		if err := apply.Apply(ctx, c, obj); err != nil {
			return err
		}
	}
	// A PriorityClass's value cannot change: created once, kept.
	never := ptr.To(corev1.PreemptNever)
	for _, pc := range []*schedulingv1.PriorityClass{
		{ObjectMeta: metav1.ObjectMeta{Name: PriorityLatencySensitive}, Value: 100000,
			Description: "Latency-sensitive (inference) pods: scheduled first, may preempt best-effort pods."},
		{ObjectMeta: metav1.ObjectMeta{Name: PriorityBestEffort}, Value: -1000, PreemptionPolicy: never,
			Description: "Best-effort (batch, training) pods: scheduled last, preempted first, never preempt."},
	} {
		if err := apply.CreateOnce(ctx, c, pc); err != nil {
			return err
		}
	}
	return nil
}

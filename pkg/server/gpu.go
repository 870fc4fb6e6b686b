package server

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/strata-dev/strata/pkg/apply"
	"github.com/strata-dev/strata/pkg/dra"
)

// Priority classes for GPU workloads: latency-sensitive inference is
// scheduled first and may preempt best-effort pods; best-effort pods never
// preempt anything.
const (
	PriorityLatencySensitive = "strata-latency-sensitive"
	PriorityBestEffort       = "strata-best-effort"
)

// gpuInventory finds the node's GPUs with the configured backend. A
// machine without NVIDIA's library and without --simulated-gpus has none,
// and the node runs without the GPU driver.
func gpuInventory(ctx context.Context, cfg *Config) ([]dra.GPU, error) {
	opts := dra.Options{Backend: cfg.GPUBackend, Simulated: cfg.SimulatedGPUs, SimulatedFile: cfg.SimulatedGPUsFile, NodeName: cfg.NodeName}
	gpus, err := dra.Inventory(ctx, opts)
	if err != nil {
		if errors.Is(err, dra.ErrNVMLUnavailable) && (cfg.GPUBackend == "" || cfg.GPUBackend == "auto") && cfg.SimulatedGPUs == "" && cfg.SimulatedGPUsFile == "" {
			return nil, nil
		}
		return nil, fmt.Errorf("GPUs: %w", err)
	}
	return gpus, nil
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

package server

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

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
func ensureGPUObjects(ctx context.Context, client kubernetes.Interface) error {
	if err := ensure(ctx, client.ResourceV1().DeviceClasses(), dra.DeviceClass()); err != nil {
		return fmt.Errorf("DeviceClass %s: %w", dra.DriverName, err)
	}
	policy, binding := dra.ClaimProtection()
	if err := ensure(ctx, client.AdmissionregistrationV1().MutatingAdmissionPolicies(), policy); err != nil {
		return fmt.Errorf("MutatingAdmissionPolicy %s: %w", policy.Name, err)
	}
	if err := ensure(ctx, client.AdmissionregistrationV1().MutatingAdmissionPolicyBindings(), binding); err != nil {
		return fmt.Errorf("MutatingAdmissionPolicyBinding %s: %w", binding.Name, err)
	}
	// A PriorityClass's value cannot change: created once, kept.
	never := ptr.To(corev1.PreemptNever)
	for _, pc := range []*schedulingv1.PriorityClass{
		{ObjectMeta: metav1.ObjectMeta{Name: PriorityLatencySensitive}, Value: 100000,
			Description: "Latency-sensitive (inference) pods: scheduled first, may preempt best-effort pods."},
		{ObjectMeta: metav1.ObjectMeta{Name: PriorityBestEffort}, Value: -1000, PreemptionPolicy: never,
			Description: "Best-effort (batch, training) pods: scheduled last, preempted first, never preempt."},
	} {
		if _, err := client.SchedulingV1().PriorityClasses().Create(ctx, pc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create PriorityClass %s: %w", pc.Name, err)
		}
	}
	return nil
}

// typedClient is the part of a client-go typed client ensure uses.
type typedClient[T metav1.Object] interface {
	Create(context.Context, T, metav1.CreateOptions) (T, error)
	Get(context.Context, string, metav1.GetOptions) (T, error)
	Update(context.Context, T, metav1.UpdateOptions) (T, error)
}

// ensure creates obj, or replaces an existing object of its name with it
// (so that a newer strata updates what an older one created).
func ensure[T metav1.Object](ctx context.Context, c typedClient[T], obj T) error {
	_, err := c.Create(ctx, obj, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	existing, err := c.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if err != nil {
		return err
	}
	obj.SetResourceVersion(existing.GetResourceVersion())
	_, err = c.Update(ctx, obj, metav1.UpdateOptions{})
	return err
}

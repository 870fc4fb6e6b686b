package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-dev/strata/pkg/dra"
)

// gpuFlags are the GPU flags servers and agents share.
type gpuFlags struct {
	GPUBackend, SimulatedGPUs, SimulatedGPUsFile, NodeName string
}

// gpuInventory finds the node's GPUs with the configured backend. A
// machine without NVIDIA's library and without --simulated-gpus has none,
// and the node runs without the GPU driver.
func gpuInventory(ctx context.Context, cfg gpuFlags) ([]dra.GPU, error) {
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

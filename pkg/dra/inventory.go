// Package dra is Strata's Dynamic Resource Allocation driver for GPUs.
//
// It publishes one ResourceSlice pool per node under resource.k8s.io/v1 with
// one device per GPU, lets several ResourceClaims share a GPU through the
// upstream consumable-capacity mechanism (DRAConsumableCapacity), and
// prepares claims for the kubelet as CDI devices. Two backends find the
// GPUs: NVML (a real NVIDIA driver) and a simulated inventory, so the whole
// path works on machines without GPUs. See README.md in this folder.
package dra

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-dev/strata/pkg/gpu"
)

// DriverName is the DRA driver name, the DeviceClass name and the CDI
// vendor: the contract's (pkg/gpu), named here too for the driver's users.
const DriverName = gpu.DriverName

// Backend names, also published as the backend device attribute.
const (
	BackendAuto      = "auto"
	BackendNVML      = "nvml"
	BackendSimulated = "simulated"
)

// GPU is one physical (or simulated) GPU of a node.
type GPU struct {
	// Index is the GPU's NVML index (simulated: its position in the list).
	Index int `json:"index"`
	// UUID is the NVML UUID; simulated GPUs get GPU-sim-<node>-<index>.
	UUID string `json:"uuid"`
	// Model is a short product name, e.g. "A100-80GB".
	Model string `json:"model"`
	// MemoryBytes is the GPU's total memory.
	MemoryBytes int64 `json:"memoryBytes"`
	// MIGCapable tells whether the GPU supports Multi-Instance GPU.
	MIGCapable bool `json:"migCapable"`
	// Backend is "nvml" or "simulated".
	Backend string `json:"backend"`
	// Minor is the /dev/nvidia<minor> device number, -1 when unknown
	// (always for simulated GPUs).
	Minor int `json:"minor"`
}

// DeviceName is the name of the GPU's device in the ResourceSlice.
func (g GPU) DeviceName() string { return gpu.DeviceName(g.Index) }

// Options selects and configures the inventory backend.
type Options struct {
	// Backend is "auto" (or empty), "nvml" or "simulated".
	//   - nvml: NVML must be available, otherwise Inventory fails.
	//   - simulated: the Simulated/SimulatedFile inventory.
	//   - auto: NVML when the library loads; otherwise the simulated
	//     inventory when one is configured; otherwise an error.
	Backend string
	// Simulated is an inventory such as "4xA100-80GB" or
	// "2xA100-80GB,1xT4-16GB" (see ParseSimulated).
	Simulated string
	// SimulatedFile names a file with the same syntax; entries may also be
	// separated by newlines, and '#' starts a comment.
	SimulatedFile string
	// NodeName goes into the fake UUIDs of simulated GPUs.
	NodeName string
	// FallbackToSimulated lets Backend "nvml" fall back to the simulated
	// inventory when NVML is not available (Backend "auto" always does
	// when a simulated inventory is configured).
	FallbackToSimulated bool

	// nvmlInventory replaces NVML discovery in tests.
	nvmlInventory func() ([]GPU, error)
}

// ErrNVMLUnavailable is returned (wrapped) when libnvidia-ml.so.1 cannot be
// loaded, i.e. there is no NVIDIA driver on the machine.
var ErrNVMLUnavailable = errors.New("NVML not available")

// Inventory lists the node's GPUs with the configured backend. It is safe to
// call without a cluster, e.g. from `strata gpu list`.
func Inventory(ctx context.Context, opts Options) ([]GPU, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	simulated := opts.Simulated != "" || opts.SimulatedFile != ""
	switch opts.Backend {
	case BackendSimulated:
		if !simulated {
			return nil, errors.New("simulated GPU backend selected but no inventory given (e.g. --simulated-gpus 4xA100-80GB)")
		}
		return simulatedInventory(opts)
	case BackendNVML, BackendAuto, "":
		gpus, err := opts.discoverNVML()
		if err == nil {
			return gpus, nil
		}
		fallback := opts.FallbackToSimulated || opts.Backend != BackendNVML
		if errors.Is(err, ErrNVMLUnavailable) && fallback && simulated {
			return simulatedInventory(opts)
		}
		return nil, err
	default:
		return nil, fmt.Errorf("unknown GPU backend %q: want %q, %q or %q", opts.Backend, BackendAuto, BackendNVML, BackendSimulated)
	}
}

func (opts Options) discoverNVML() ([]GPU, error) {
	if opts.nvmlInventory != nil {
		return opts.nvmlInventory()
	}
	return nvmlInventory()
}

func simulatedInventory(opts Options) ([]GPU, error) {
	spec := opts.Simulated
	if opts.SimulatedFile != "" {
		if spec != "" {
			return nil, errors.New("give the simulated GPU inventory either as a list or as a file, not both")
		}
		var err error
		if spec, err = readSimulatedFile(opts.SimulatedFile); err != nil {
			return nil, err
		}
	}
	return ParseSimulated(spec, opts.NodeName)
}

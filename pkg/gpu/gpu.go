// Package gpu is the GPU contract between Strata's DRA driver (pkg/dra),
// which publishes a node's GPUs as ResourceSlice devices and prepares the
// claims allocated on them, and everything that reads those devices and
// claims back: the scheduler plugins (pkg/scheduler/plugins), the
// GPU-sharing model (pkg/gpushare) and the trace benchmark (bench/gputrace).
//
// The names here are wire format: they appear in ResourceSlices,
// ResourceClaims, DeviceClasses and CEL selectors that users write, so
// changing one breaks clusters and manifests, not just code. Keeping them
// in one package, and the helpers that read them, is what lets a test tie
// the driver's slice to the plugins' reading of it. The package imports
// only the Kubernetes API types and apimachinery (imports_test.go checks),
// so that both sides (and the benchmark) can depend on it without pulling
// in either.
package gpu

import resourcev1 "k8s.io/api/resource/v1"

// DriverName is the DRA driver name, the name of the DeviceClass claims ask
// for (deviceClassName), the domain that qualifies attribute names in CEL
// and the CDI vendor of the devices the driver prepares.
const DriverName = "gpu.strata.dev"

// Capacities of every GPU device. A request without a capacity request
// gets the device's default: a whole GPU and no memory reserved.
const (
	// CapacityCompute is the GPU's compute in milli-GPU, MilliPerGPU per
	// device. A share asks 1..MilliPerGPU.
	CapacityCompute resourcev1.QualifiedName = "compute"
	// CapacityMemory is the GPU's memory in bytes. A share may reserve
	// part of it.
	CapacityMemory resourcev1.QualifiedName = "memory"
)

// MilliPerGPU is the compute capacity of one GPU: shares are counted in
// thousandths so that integer quantities (plain numbers, not "m"
// suffixes) express them.
const MilliPerGPU = 1000

// Attributes of every GPU device.
const (
	// AttrModel is the short product name, e.g. "A100-80GB"; model
	// restrictions select on it (ModelSelector).
	AttrModel resourcev1.QualifiedName = "model"
	// AttrUUID is the NVML UUID (GPU-sim-<node>-<index> when simulated);
	// claims for several GPUs ask for distinct values of it.
	AttrUUID resourcev1.QualifiedName = "uuid"
	// AttrIndex is the GPU's index on its node, which places it in the
	// per-GPU arrays of the scheduler's model.
	AttrIndex resourcev1.QualifiedName = "index"
	// AttrMIGCapable tells whether the GPU supports Multi-Instance GPU.
	AttrMIGCapable resourcev1.QualifiedName = "migCapable"
	// AttrBackend is the inventory backend that found the GPU, "nvml" or
	// "simulated".
	AttrBackend resourcev1.QualifiedName = "backend"
)

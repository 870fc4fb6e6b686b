package gpu

import (
	"strconv"
	"strings"

	resourcev1 "k8s.io/api/resource/v1"
)

// devicePrefix starts the name of every GPU device: gpu-<index>.
const devicePrefix = "gpu-"

// DeviceName is the name of the GPU with the given index in its node's
// ResourceSlice, and so in the allocation results of claims.
func DeviceName(index int) string { return devicePrefix + strconv.Itoa(index) }

// DeviceIndex reads the GPU index back from a device name DeviceName wrote;
// ok is false for any other name. It serves readers that have only an
// allocation result, which names the device but carries no attributes.
func DeviceIndex(name string) (index int, ok bool) {
	s, ok := strings.CutPrefix(name, devicePrefix)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 || DeviceName(i) != name {
		return 0, false // "gpu-01", "gpu-+1": not a name the driver writes
	}
	return i, true
}

// Qualified is the attribute or capacity name qualified by the driver's
// domain, as device constraints (distinctAttribute, matchAttribute) need it
// and as CEL may also write it.
func Qualified(name resourcev1.QualifiedName) resourcev1.FullyQualifiedName {
	return resourcev1.FullyQualifiedName(DriverName + "/" + string(name))
}

// Attribute returns the device's attribute name. The driver publishes bare
// names, which the API treats as qualified by the driver's domain; a slice
// written with the qualified name means the same and is read the same.
func Attribute(d *resourcev1.Device, name resourcev1.QualifiedName) (resourcev1.DeviceAttribute, bool) {
	if a, ok := d.Attributes[name]; ok {
		return a, true
	}
	a, ok := d.Attributes[resourcev1.QualifiedName(Qualified(name))]
	return a, ok
}

// Consumed is the compute (milli-GPU) and memory (bytes) an allocation
// result takes of its GPU. A result without consumed capacity (an
// exclusive allocation: consumable capacity off, or admin access) is
// counted as the whole GPU's compute and no reserved memory, as the
// driver prepares it. What the allocator counts against a GPU differs for
// admin access (nothing): see gpustate's usageOf.
func Consumed(r *resourcev1.DeviceRequestAllocationResult) (milli, memory int64) {
	milli = MilliPerGPU
	if q, ok := r.ConsumedCapacity[CapacityCompute]; ok {
		milli = q.Value()
	}
	if q, ok := r.ConsumedCapacity[CapacityMemory]; ok {
		memory = q.Value()
	}
	return milli, memory
}

package dra

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/pkg/gpu"
)

// Device is the ResourceSlice device of one GPU, with the names of the
// contract in pkg/gpu. The GPU allows multiple allocations
// (DRAConsumableCapacity): the scheduler's allocator sums the capacity that
// the claims sharing it consume and never goes past the GPU's capacity. A
// request without capacity requests gets the policies' defaults: the whole
// GPU's compute and no memory; a share asks 1..1000 milli-GPU.
func Device(g GPU) resourcev1.Device {
	return resourcev1.Device{
		Name: g.DeviceName(),
		Attributes: map[resourcev1.QualifiedName]resourcev1.DeviceAttribute{
			gpu.AttrModel:      {StringValue: ptr.To(g.Model)},
			gpu.AttrUUID:       {StringValue: ptr.To(g.UUID)},
			gpu.AttrIndex:      {IntValue: ptr.To(int64(g.Index))},
			gpu.AttrMIGCapable: {BoolValue: ptr.To(g.MIGCapable)},
			gpu.AttrBackend:    {StringValue: ptr.To(g.Backend)},
		},
		Capacity: map[resourcev1.QualifiedName]resourcev1.DeviceCapacity{
			gpu.CapacityCompute: {
				Value: *resource.NewQuantity(gpu.MilliPerGPU, resource.DecimalSI),
				RequestPolicy: &resourcev1.CapacityRequestPolicy{
					Default: resource.NewQuantity(gpu.MilliPerGPU, resource.DecimalSI),
					ValidRange: &resourcev1.CapacityRequestPolicyRange{
						Min: resource.NewQuantity(1, resource.DecimalSI),
						Max: resource.NewQuantity(gpu.MilliPerGPU, resource.DecimalSI),
					},
				},
			},
			gpu.CapacityMemory: {
				Value: *resource.NewQuantity(g.MemoryBytes, resource.BinarySI),
				RequestPolicy: &resourcev1.CapacityRequestPolicy{
					Default: resource.NewQuantity(0, resource.BinarySI),
					ValidRange: &resourcev1.CapacityRequestPolicyRange{
						Min: resource.NewQuantity(0, resource.BinarySI),
						Max: resource.NewQuantity(g.MemoryBytes, resource.BinarySI),
					},
				},
			},
		},
		AllowMultipleAllocations: ptr.To(true),
	}
}

// DriverResources is what the node publishes: one pool named after the
// node with one slice holding every GPU.
func DriverResources(nodeName string, gpus []GPU) resourceslice.DriverResources {
	devices := make([]resourcev1.Device, 0, len(gpus))
	for _, g := range gpus {
		devices = append(devices, Device(g))
	}
	return resourceslice.DriverResources{
		Pools: map[string]resourceslice.Pool{
			nodeName: {Slices: []resourceslice.Slice{{Devices: devices}}},
		},
	}
}

// DeviceClass is the cluster's GPU class, which the server applies; claims
// name it as deviceClassName "gpu.strata.dev".
func DeviceClass() *resourcev1.DeviceClass {
	return &resourcev1.DeviceClass{
		TypeMeta: metav1.TypeMeta{APIVersion: resourcev1.SchemeGroupVersion.String(), Kind: "DeviceClass"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   DriverName,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "strata"},
		},
		Spec: resourcev1.DeviceClassSpec{
			Selectors: []resourcev1.DeviceSelector{{
				CEL: &resourcev1.CELDeviceSelector{Expression: `device.driver == "` + DriverName + `"`},
			}},
		},
	}
}

// ClaimProtectionPolicy names the MutatingAdmissionPolicy (and its binding)
// that ClaimProtection returns.
const ClaimProtectionPolicy = "strata-resourceclaim-delete-protection"

// ClaimProtection is a MutatingAdmissionPolicy, with its binding, that
// creates every ResourceClaim with the finalizer kube-scheduler would
// otherwise add when it allocates the claim
// (resource.kubernetes.io/delete-protection). Allocating then takes one
// API write (the status) instead of two (a PUT for the finalizer, then
// the status), for every claim of every pod.
//
// The finalizer is the one the resource claim controller already
// manages: it removes it when the last pod stops using the claim (as
// today) and when an unallocated claim is deleted, so a claim that was
// never used still goes away; only that deletion takes one write more.
// Evaluation failures leave the claim as it was (failurePolicy Ignore):
// the scheduler then adds the finalizer itself, as upstream does.
func ClaimProtection() (*admissionregistrationv1.MutatingAdmissionPolicy, *admissionregistrationv1.MutatingAdmissionPolicyBinding) {
	const fin = resourcev1.Finalizer
	meta := metav1.ObjectMeta{Name: ClaimProtectionPolicy, Labels: map[string]string{"app.kubernetes.io/managed-by": "strata"}}
	policy := &admissionregistrationv1.MutatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "MutatingAdmissionPolicy"},
		ObjectMeta: meta,
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
						Rule: admissionregistrationv1.Rule{
							APIGroups:   []string{resourcev1.GroupName},
							APIVersions: []string{"*"},
							Resources:   []string{"resourceclaims"},
						},
					},
				}},
			},
			MatchConditions: []admissionregistrationv1.MatchCondition{{
				Name:       "without-delete-protection",
				Expression: `!has(object.metadata.finalizers) || !object.metadata.finalizers.exists(f, f == "` + fin + `")`,
			}},
			Mutations: []admissionregistrationv1.Mutation{{
				PatchType: admissionregistrationv1.PatchTypeJSONPatch,
				JSONPatch: &admissionregistrationv1.JSONPatch{Expression: `has(object.metadata.finalizers) ? ` +
					`[JSONPatch{op: "add", path: "/metadata/finalizers/-", value: "` + fin + `"}] : ` +
					`[JSONPatch{op: "add", path: "/metadata/finalizers", value: ["` + fin + `"]}]`},
			}},
			FailurePolicy:      ptr.To(admissionregistrationv1.Ignore),
			ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
		},
	}
	binding := &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "MutatingAdmissionPolicyBinding"},
		ObjectMeta: meta,
		Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: ClaimProtectionPolicy},
	}
	return policy, binding
}

package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Runtime says how a Function's image runs.
// +kubebuilder:validation:Enum=wasm;container
type Runtime string

const (
	// RuntimeWasm runs a WASI HTTP (WAGI) module, built with
	// `strata image build --wasm --http-port`, in RuntimeClass wasm; at zero
	// replicas the node's wasm host answers without creating a pod.
	RuntimeWasm Runtime = "wasm"
	// RuntimeContainer runs an ordinary container that listens on Port.
	RuntimeContainer Runtime = "container"
)

// FunctionSpec is what the developer deploys.
// +kubebuilder:validation:XValidation:rule="!has(self.minScale) || !has(self.maxScale) || self.minScale <= self.maxScale",message="minScale must not be greater than maxScale"
type FunctionSpec struct {
	// Image is the function's OCI image. Like every image it must pass the
	// cluster's image signature policy.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Image string `json:"image"`

	// Runtime is wasm or container.
	// +kubebuilder:default=container
	// +optional
	Runtime Runtime `json:"runtime,omitempty"`

	// Port is where the function listens for HTTP.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=8080
	// +optional
	Port int32 `json:"port,omitempty"`

	// Env is passed to the function.
	// +kubebuilder:validation:MaxItems=128
	// +listType=map
	// +listMapKey=name
	// +optional
	Env []EnvVar `json:"env,omitempty"`

	// MinScale is the fewest replicas kept running; 0 lets the function
	// scale to zero.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MinScale *int32 `json:"minScale,omitempty"`

	// MaxScale bounds the replicas (default 10, or minScale when that is
	// higher).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MaxScale *int32 `json:"maxScale,omitempty"`

	// TargetConcurrency is the number of requests in flight per replica the
	// autoscaler aims for.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	TargetConcurrency *int32 `json:"targetConcurrency,omitempty"`

	// ScaleToZeroGracePeriod is how long a function without requests keeps
	// its last replica.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule=`self.matches('^(0|([0-9]{1,6}([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$')`,message="must be a duration such as 30s, 5m or 1h30m (digits and a unit, no sign)"
	// +optional
	ScaleToZeroGracePeriod *metav1.Duration `json:"scaleToZeroGracePeriod,omitempty"`

	// StableWindow is the autoscaler's averaging window (Knative's 60 s);
	// the panic window is a tenth of it.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule=`self.matches('^(0|([0-9]{1,6}([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$')`,message="must be a duration such as 30s, 5m or 1h30m (digits and a unit, no sign)"
	// +optional
	StableWindow *metav1.Duration `json:"stableWindow,omitempty"`

	// Timeout bounds each request, including the time it waits for a
	// replica.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule=`self.matches('^(0|([0-9]{1,6}([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$')`,message="must be a duration such as 30s, 5m or 1h30m (digits and a unit, no sign)"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// Memory limits each replica (for wasm: each instance's linear memory).
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
}

// EnvVar is one environment variable.
type EnvVar struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z][-._a-zA-Z0-9]*$`
	Name string `json:"name"`
	// +kubebuilder:validation:MaxLength=32768
	// +optional
	Value string `json:"value,omitempty"`
}

// FunctionStatus is what the platform reports.
type FunctionStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready says whether requests can be answered; its reason
	// names the problem when not.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// URL is where the function answers through the Strata gateway.
	// +optional
	URL string `json:"url,omitempty"`
	// Replicas is the number of ready replicas.
	Replicas int32 `json:"replicas"`
	// DesiredReplicas is what the autoscaler asks for.
	DesiredReplicas int32 `json:"desiredReplicas"`
}

// Function is an HTTP function that scales with its traffic, down to zero.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=fn;fns,categories=strata
// +kubebuilder:printcolumn:name="Runtime",type=string,JSONPath=`.spec.runtime`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.replicas`
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.desiredReplicas`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Function struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec FunctionSpec `json:"spec"`
	// +optional
	Status FunctionStatus `json:"status,omitempty"`
}

// FunctionList is a list of Functions.
// +kubebuilder:object:root=true
type FunctionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Function `json:"items"`
}

// Condition types and reasons.
const (
	ConditionReady = "Ready"

	ReasonReady          = "Ready"
	ReasonScaledToZero   = "ScaledToZero"
	ReasonDeploying      = "Deploying"
	ReasonImagePull      = "ImagePullFailed"
	ReasonCrashing       = "Crashing"
	ReasonRejected       = "Rejected"
	ReasonInvalidModule  = "InvalidModule"
	ReasonModuleFailing  = "ModuleFailing"
	ReasonInvalidRuntime = "InvalidRuntime"
)

// Defaults applied when a field is unset.
const (
	DefaultTargetConcurrency = 10
	DefaultMaxScale          = 10
)

// Defaulted helpers read a spec with its defaults applied.

// MinReplicas is spec.minScale or 0.
func (s *FunctionSpec) MinReplicas() int32 {
	if s.MinScale == nil {
		return 0
	}
	return *s.MinScale
}

// MaxReplicas is spec.maxScale or, unset, DefaultMaxScale raised to
// minScale: a minScale above the default alone must not be capped below
// itself.
func (s *FunctionSpec) MaxReplicas() int32 {
	if s.MaxScale == nil {
		return max(DefaultMaxScale, s.MinReplicas())
	}
	return *s.MaxScale
}

// Target is spec.targetConcurrency or DefaultTargetConcurrency.
func (s *FunctionSpec) Target() int32 {
	if s.TargetConcurrency == nil {
		return DefaultTargetConcurrency
	}
	return *s.TargetConcurrency
}

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PolicyMode says what happens to an image that fails a policy.
// +kubebuilder:validation:Enum=enforce;warn
type PolicyMode string

const (
	// ModeEnforce denies the request.
	ModeEnforce PolicyMode = "enforce"
	// ModeWarn admits the request and returns a warning to the client
	// (kubectl prints it).
	ModeWarn PolicyMode = "warn"
)

// ClusterImagePolicySpec says which images the policy covers and whose
// signatures they must carry.
type ClusterImagePolicySpec struct {
	// Images are glob patterns matched against an image's repository, as
	// normalised by the OCI distribution rules (nginx is
	// index.docker.io/library/nginx; tags and digests are not part of it).
	// `*` matches within one path segment, `**` across segments, `?` one
	// character, `[a-z]` a class. Example: `registry.example.com/team/**`.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Images []ImagePattern `json:"images"`

	// Authorities are the keys the policy trusts. An image passes when a
	// signature verifies with any of them, so listing the old and the new
	// key lets a key be rotated without downtime.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	Authorities []Authority `json:"authorities"`

	// Mode is enforce (deny what fails) or warn (admit it with a warning).
	// +kubebuilder:default=enforce
	// +optional
	Mode PolicyMode `json:"mode,omitempty"`
}

// ImagePattern selects images by repository.
type ImagePattern struct {
	// Glob is the pattern; see ClusterImagePolicySpec.Images.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Glob string `json:"glob"`
}

// Authority is one trusted signer.
type Authority struct {
	// Name identifies the authority in messages and status.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Name string `json:"name,omitempty"`

	// Key is the signer's public key (cosign.pub).
	Key KeySource `json:"key"`
}

// KeySource holds a PEM public key inline or points at one in a Secret.
// +kubebuilder:validation:XValidation:rule="has(self.data) != has(self.secretRef)",message="set exactly one of key.data (an inline PEM public key) and key.secretRef"
type KeySource struct {
	// Data is a PEM-encoded public key, as written by `strata keys
	// generate` or `cosign generate-key-pair` (ECDSA P-256/384/521, RSA or
	// Ed25519).
	// +kubebuilder:validation:MaxLength=16384
	// +optional
	Data string `json:"data,omitempty"`

	// SecretRef names a Secret key that holds the PEM public key. Changes
	// to the Secret take effect within a minute.
	// +optional
	SecretRef *SecretKeyReference `json:"secretRef,omitempty"`
}

// SecretKeyReference names one key of a Secret.
type SecretKeyReference struct {
	// +kubebuilder:validation:MinLength=1
	Namespace string `json:"namespace"`
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Key is the entry of the Secret's data that holds the PEM.
	// +kubebuilder:default="cosign.pub"
	// +optional
	Key string `json:"key,omitempty"`
}

// ClusterImagePolicyStatus reports whether the policy can be enforced.
type ClusterImagePolicyStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready is True when every pattern and key loaded. A policy
	// that is not Ready still applies: images it covers are denied (or
	// warned about) until it is fixed, never silently admitted.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ClusterImagePolicy admits container images only when they carry a
// signature from one of its authorities. Every policy whose images match
// an image applies to it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=cip,categories=strata
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterImagePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ClusterImagePolicySpec `json:"spec"`
	// +optional
	Status ClusterImagePolicyStatus `json:"status,omitempty"`
}

// ClusterImagePolicyList is a list of ClusterImagePolicy.
//
// +kubebuilder:object:root=true
type ClusterImagePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterImagePolicy `json:"items"`
}

// Condition types and reasons.
const (
	ConditionReady = "Ready"

	ReasonLoaded      = "Loaded"
	ReasonInvalidKey  = "InvalidKey"
	ReasonInvalidGlob = "InvalidGlob"
	ReasonKeyNotFound = "KeyNotFound"
)

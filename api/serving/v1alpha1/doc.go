// Package v1alpha1 holds the serving.strata.dev API: Functions, HTTP
// workloads that scale to zero and back on demand.
//
// +kubebuilder:object:generate=true
// +groupName=serving.strata.dev
package v1alpha1

// Package v1alpha1 holds the security.strata.dev API: cluster policies that
// decide which container images may run, by signature.
//
// +kubebuilder:object:generate=true
// +groupName=security.strata.dev
package v1alpha1

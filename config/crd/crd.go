// Package crd embeds the CustomResourceDefinitions that controller-gen
// writes here (make generate), so `strata server` installs exactly what is
// in the repository.
package crd

import "embed"

// Files holds every generated CRD manifest.
//
//go:embed *.yaml
var Files embed.FS

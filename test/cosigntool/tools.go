//go:build tools

// Package cosigntool pins the cosign CLI that the e2e tests build from its
// Go module, so Strata's signatures are checked by the real tool and the
// real tool's signatures by Strata. Its own module, so cosign's dependencies
// do not move Strata's.
package cosigntool

import _ "github.com/sigstore/cosign/v3/cmd/cosign"

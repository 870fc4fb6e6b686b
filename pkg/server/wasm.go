package server

import (
	"context"

	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/strata-dev/strata/pkg/apply"
	"github.com/strata-dev/strata/pkg/node"
)

// Wasm pods run through the runtime handler "wasm", served by
// containerd-shim-strata-wasm-v1 (cmd/), and RuntimeClass "wasm" sends them
// to nodes labelled as having that shim.
const (
	wasmShimName  = "containerd-shim-strata-wasm-v1"
	wasmNodeLabel = "strata.dev/wasm"
)

// ensureRuntimeClass creates RuntimeClass wasm, scheduled onto nodes that
// have the shim.
func ensureRuntimeClass(ctx context.Context, c client.Client) error {
	return apply.CreateOnce(ctx, c, &nodev1.RuntimeClass{
		ObjectMeta: metav1.ObjectMeta{Name: node.WasmHandler},
		Handler:    node.WasmHandler,
		Scheduling: &nodev1.Scheduling{NodeSelector: map[string]string{wasmNodeLabel: "true"}},
	})
}

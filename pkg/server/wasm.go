package server

import (
	"context"
	"fmt"

	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

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
func ensureRuntimeClass(ctx context.Context, client kubernetes.Interface) error {
	rc := &nodev1.RuntimeClass{
		ObjectMeta: metav1.ObjectMeta{Name: node.WasmHandler},
		Handler:    node.WasmHandler,
		Scheduling: &nodev1.Scheduling{NodeSelector: map[string]string{wasmNodeLabel: "true"}},
	}
	_, err := client.NodeV1().RuntimeClasses().Create(ctx, rc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create RuntimeClass %s: %w", node.WasmHandler, err)
	}
	return nil
}

package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

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

// findWasmShim returns the shim next to the strata binary, or "" when it
// was not built: the node then runs without wasm support.
func findWasmShim() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(exe), wasmShimName)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

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

package node

import (
	"github.com/strata-dev/strata/pkg/layout"
	"github.com/strata-dev/strata/pkg/wasm"
	"path/filepath"
)

// WasmHandler is the runtime handler (RuntimeClass handler) of wasm pods.
const WasmHandler = wasm.RuntimeHandler

// AddWasmRuntime registers the wasm handler, served by the shim binary at
// shim (containerd-shim-strata-wasm-v1). containerd finds the shim on its
// PATH and passes it its settings through the environment: cacheDir holds
// compiled modules, socketDir the shims' ttrpc sockets.
func (c *Containerd) AddWasmRuntime(shim, cacheDir, socketDir string) {
	c.ExtraRuntimes = append(c.ExtraRuntimes, Runtime{
		Name: WasmHandler,
		Type: "io.containerd.strata-wasm.v1",
		// The shim's per-pod settings (HTTP port, deadlines) and the
		// termination-log path it writes failures to.
		PodAnnotations:       []string{"wasm.strata.dev/*"},
		ContainerAnnotations: []string{"io.kubernetes.container.terminationMessagePath"},
	})
	c.ShimDirs = append(c.ShimDirs, filepath.Dir(shim))
	c.Env = append(c.Env,
		layout.EnvWasmCacheDir+"="+cacheDir,
		layout.EnvWasmSocketDir+"="+socketDir,
	)
}

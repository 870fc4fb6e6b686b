package serverless

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	servingv1 "github.com/strata-dev/strata/api/serving/v1alpha1"
	"github.com/strata-dev/strata/pkg/controllers/function"
	"github.com/strata-dev/strata/pkg/wasm"
)

// HostConfig is what the wasm host needs to run a function's module.
type HostConfig struct {
	// Image is the image admission admitted: the Deployment's pod template
	// image, pinned to the digest that was verified.
	Image       string
	Env         []string
	Port        int
	Timeout     time.Duration
	MemoryLimit uint64
}

// defaultHostMemory bounds an instance's linear memory when the function
// sets no memory limit.
const defaultHostMemory = 256 << 20

// WasmHost is the node's warm wasm host: it keeps each wasm function's
// module fetched and compiled, and answers requests while the function has
// no ready replica, each request in a fresh instance with the function's
// memory limit and deadline. A cold start is then an instantiation (about
// a millisecond), not a pod creation.
type WasmHost struct {
	engine *wasm.Engine
	fetch  func(ctx context.Context, ref string) ([]byte, *v1.ConfigFile, error)
	// changed is told when a function's module problem changes.
	changed func(types.NamespacedName)

	mu  sync.Mutex
	fns map[types.NamespacedName]*hosted
}

type hosted struct {
	cfg     HostConfig
	module  *wasm.Module
	handler http.Handler
	problem *function.Problem
	cancel  context.CancelFunc
}

// NewWasmHost returns a host compiling with engine and fetching modules
// with fetch.
func NewWasmHost(engine *wasm.Engine, fetch func(ctx context.Context, ref string) ([]byte, *v1.ConfigFile, error), changed func(types.NamespacedName)) *WasmHost {
	return &WasmHost{engine: engine, fetch: fetch, changed: changed, fns: map[types.NamespacedName]*hosted{}}
}

// Ensure makes the host serve key with cfg, fetching and compiling the
// module in the background when cfg changed.
func (h *WasmHost) Ensure(key types.NamespacedName, cfg HostConfig) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur, ok := h.fns[key]; ok && sameHostConfig(cur.cfg, cfg) {
		return
	}
	h.removeLocked(key)
	ctx, cancel := context.WithCancel(context.Background())
	hs := &hosted{cfg: cfg, cancel: cancel}
	h.fns[key] = hs
	go h.load(ctx, key, hs)
}

func sameHostConfig(a, b HostConfig) bool {
	return a.Image == b.Image && strings.Join(a.Env, "\x00") == strings.Join(b.Env, "\x00") &&
		a.Port == b.Port && a.Timeout == b.Timeout && a.MemoryLimit == b.MemoryLimit
}

func (h *WasmHost) load(ctx context.Context, key types.NamespacedName, hs *hosted) {
	start := time.Now()
	m, handler, problem := h.compile(ctx, key, hs.cfg)
	if m == nil && problem == nil {
		return // the host is shutting down: nothing to serve or report
	}
	h.mu.Lock()
	if h.fns[key] != hs {
		h.mu.Unlock()
		if m != nil {
			_ = m.Close(context.Background())
		}
		return
	}
	hs.module, hs.handler, hs.problem = m, handler, problem
	h.mu.Unlock()
	if problem != nil {
		klog.InfoS("Wasm host cannot serve function", "function", key, "reason", problem.Reason, "message", problem.Message)
	} else {
		klog.InfoS("Wasm host ready", "function", key, "image", hs.cfg.Image, "duration", time.Since(start))
	}
	if h.changed != nil {
		h.changed(key)
	}
}

func (h *WasmHost) compile(ctx context.Context, key types.NamespacedName, cfg HostConfig) (*wasm.Module, http.Handler, *function.Problem) {
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	raw, cf, err := h.fetch(fctx, cfg.Image)
	if err != nil {
		return nil, nil, &function.Problem{Reason: servingv1.ReasonImagePull, Message: err.Error()}
	}
	limit := cfg.MemoryLimit
	if limit == 0 {
		limit = defaultHostMemory
	}
	m, err := h.engine.Compile(ctx, raw, wasm.Options{MemoryLimit: limit})
	if errors.Is(err, wasm.ErrEngineClosed) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, &function.Problem{Reason: servingv1.ReasonInvalidModule, Message: fmt.Sprintf("image %s: %v", cfg.Image, err)}
	}
	// The module sees what it would see in a pod: the image's env, then
	// the function's; no files, no sockets.
	env := append(append([]string(nil), cf.Config.Env...), cfg.Env...)
	args := append(append([]string(nil), cf.Config.Entrypoint...), cf.Config.Cmd...)
	stderr := &logWriter{key: key}
	handler := wasm.NewHandler(m, wasm.HTTPConfig{Args: args, Env: env, Timeout: cfg.Timeout, Port: cfg.Port, Stderr: stderr})
	return m, handler, nil
}

// Handler returns the handler serving key, if its module is ready.
func (h *WasmHost) Handler(key types.NamespacedName) (http.Handler, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hs, ok := h.fns[key]
	if !ok || hs.handler == nil {
		return nil, false
	}
	return hs.handler, true
}

// Problem is why the host cannot serve key; nil if it can or is loading.
func (h *WasmHost) Problem(key types.NamespacedName) *function.Problem {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hs, ok := h.fns[key]; ok {
		return hs.problem
	}
	return nil
}

// Remove stops serving key and frees its module.
func (h *WasmHost) Remove(key types.NamespacedName) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(key)
}

func (h *WasmHost) removeLocked(key types.NamespacedName) {
	hs, ok := h.fns[key]
	if !ok {
		return
	}
	delete(h.fns, key)
	hs.cancel()
	if hs.module != nil {
		// Instances in flight hold their own references; closing the
		// runtime ends them, so wait out the request deadline first.
		m := hs.module
		time.AfterFunc(hs.cfg.Timeout+time.Second, func() { _ = m.Close(context.Background()) })
	}
}

// Close frees every module.
func (h *WasmHost) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for key, hs := range h.fns {
		hs.cancel()
		if hs.module != nil {
			_ = hs.module.Close(context.Background())
		}
		delete(h.fns, key)
	}
}

// logWriter puts a hosted module's stderr in the server log, one entry per
// line, tagged with the function.
type logWriter struct {
	key types.NamespacedName
}

func (w *logWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		klog.InfoS("Wasm function stderr", "function", w.key, "line", line)
	}
	return len(p), nil
}

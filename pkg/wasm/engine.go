// Package wasm is the WebAssembly engine behind the containerd shim
// containerd-shim-strata-wasm-v1. It compiles WASI preview1 modules with
// wazero (compiler mode, on-disk compilation cache), runs command modules to
// completion and serves HTTP handler modules CGI-style (WAGI), one fresh
// instance per request. It enforces a linear-memory limit and deadlines and
// classifies every ending (completed, error, trap, OOM, deadline, killed) so
// the shim can report it to the kubelet.
package wasm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// PageSize is the size of a WebAssembly linear-memory page.
const PageSize = 64 << 10

var wasmMagic = []byte{0x00, 'a', 's', 'm'}

// InvalidModuleError says the bytes are not a usable WASI module.
type InvalidModuleError struct {
	Reason string
	Err    error
}

func (e *InvalidModuleError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("invalid wasm module: %s: %v", e.Reason, e.Err)
	}
	return "invalid wasm module: " + e.Reason
}

func (e *InvalidModuleError) Unwrap() error { return e.Err }

// Engine compiles modules. One Engine per process shares the compilation
// cache between all modules and runtimes.
type Engine struct {
	cache wazero.CompilationCache
	// mu keeps Close from releasing the cache under a compilation:
	// wazero panics when a runtime compiles into a closed cache (seen
	// when a server stopped while a Function's module was loading).
	mu     sync.RWMutex
	closed bool
}

// ErrEngineClosed is returned by Compile after Close.
var ErrEngineClosed = errors.New("wasm engine closed")

// NewEngine returns an engine that keeps compiled code under cacheDir
// (created if missing). wazero keys cache entries by the module's SHA-256 and
// its own version, so an upgraded shim never loads stale machine code. An
// empty cacheDir keeps the cache in memory only.
func NewEngine(cacheDir string) (*Engine, error) {
	if cacheDir == "" {
		return &Engine{cache: wazero.NewCompilationCache()}, nil
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("create wasm compilation cache %s: %w", cacheDir, err)
	}
	c, err := wazero.NewCompilationCacheWithDir(cacheDir)
	if err != nil {
		return nil, fmt.Errorf("open wasm compilation cache %s: %w", cacheDir, err)
	}
	return &Engine{cache: c}, nil
}

// Close releases the in-memory part of the cache, once compilations in
// progress have finished; later ones fail with ErrEngineClosed.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	return e.cache.Close(ctx)
}

// Options bound what a module may use.
type Options struct {
	// MemoryLimit bounds each instance's linear memory in bytes; 0 leaves
	// only WebAssembly's own 4 GiB bound.
	MemoryLimit uint64
}

// Module is a compiled module, ready to be instantiated many times.
type Module struct {
	// Digest is the sha256 of the module bytes, "sha256:<hex>".
	Digest string

	rt       wazero.Runtime
	compiled wazero.CompiledModule
	limit    uint64
}

// Compile validates and compiles a WASI command module (one that exports
// _start). Errors for bad input are *InvalidModuleError.
func (e *Engine) Compile(ctx context.Context, wasm []byte, opts Options) (*Module, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], wasmMagic) {
		return nil, &InvalidModuleError{Reason: "missing the \\0asm header (not a WebAssembly binary)"}
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, ErrEngineClosed
	}
	sum := sha256.Sum256(wasm)
	// One runtime per module: the memory limit is per module and a runtime
	// lets Close free everything the module's instances used.
	cfg := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(e.cache).
		// Cancelling the run context (Kill, deadline) must stop a module
		// even in a tight loop.
		WithCloseOnContextDone(true)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("instantiate WASI: %w", err)
	}
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		rt.Close(ctx)
		return nil, &InvalidModuleError{Reason: "compile", Err: err}
	}
	m := &Module{Digest: "sha256:" + hex.EncodeToString(sum[:]), rt: rt, compiled: compiled, limit: opts.MemoryLimit}
	if err := m.check(); err != nil {
		m.Close(ctx)
		return nil, err
	}
	return m, nil
}

// check rejects modules that cannot run as WASI commands under the limit,
// before any instance is made.
func (m *Module) check() error {
	start, ok := m.compiled.ExportedFunctions()["_start"]
	if !ok {
		return &InvalidModuleError{Reason: "no exported _start function (only WASI command modules are supported)"}
	}
	if len(start.ParamTypes()) != 0 || len(start.ResultTypes()) != 0 {
		return &InvalidModuleError{Reason: "_start must take and return nothing"}
	}
	for _, f := range m.compiled.ImportedFunctions() {
		if mn, name, _ := f.Import(); mn != wasi_snapshot_preview1.ModuleName {
			return &InvalidModuleError{Reason: fmt.Sprintf("imports %s.%s; only %s is provided", mn, name, wasi_snapshot_preview1.ModuleName)}
		}
	}
	if m.limit > 0 {
		for _, mem := range m.memories() {
			if need := uint64(mem.Min()) * PageSize; need > m.limit {
				return &OOMError{Limit: m.limit, Wanted: need}
			}
		}
	}
	return nil
}

func (m *Module) memories() []api.MemoryDefinition {
	var out []api.MemoryDefinition
	for _, d := range m.compiled.ExportedMemories() {
		out = append(out, d)
	}
	out = append(out, m.compiled.ImportedMemories()...)
	return out
}

// Close frees the compiled code and every instance.
func (m *Module) Close(ctx context.Context) error { return m.rt.Close(ctx) }

// OOMError says a module wanted more linear memory than its limit.
type OOMError struct {
	Limit, Wanted uint64
}

func (e *OOMError) Error() string {
	return fmt.Sprintf("wasm module exceeded its memory limit: wanted %d MiB of linear memory, limit %d MiB", e.Wanted>>20, e.Limit>>20)
}

// IsOOM reports whether err is an OOMError.
func IsOOM(err error) bool {
	var o *OOMError
	return errors.As(err, &o)
}

// RuntimeHandler is the containerd runtime handler (and RuntimeClass) of
// wasm pods; nodes whose containerd has the shim carry NodeLabel=true.
const (
	RuntimeHandler = "wasm"
	NodeLabel      = "strata.dev/wasm"
)

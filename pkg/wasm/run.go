package wasm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// Reason says how a run ended; the values match the kubelet's container
// state reasons where one exists.
type Reason string

const (
	ReasonCompleted        Reason = "Completed"
	ReasonError            Reason = "Error" // the module exited non-zero
	ReasonTrap             Reason = "Trap"
	ReasonOOMKilled        Reason = "OOMKilled"
	ReasonDeadlineExceeded Reason = "DeadlineExceeded"
	ReasonKilled           Reason = "Killed"
)

// Exit codes for endings that are not the module's own proc_exit. They
// follow the shell convention for signals so that they read like a
// container's: 137 for OOM and SIGKILL, 143 for SIGTERM.
const (
	ExitCodeTrap     = 134 // like SIGABRT
	ExitCodeOOM      = 137
	ExitCodeDeadline = 124 // like timeout(1)
)

// Mount makes a host directory visible to the module (a WASI preopen).
type Mount struct {
	HostPath, GuestPath string
	ReadOnly            bool
}

// RunConfig is what one instance sees.
type RunConfig struct {
	Args []string
	// Env is KEY=VALUE pairs.
	Env            []string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Mounts         []Mount
	// Timeout bounds the run; 0 means none.
	Timeout time.Duration
}

// Result is how a run ended.
type Result struct {
	ExitCode int
	Reason   Reason
	// Message explains an abnormal ending in words for the pod status.
	Message string
}

// KilledError is the cancel cause the shim uses for Kill.
type KilledError struct{ Signal int }

func (e *KilledError) Error() string { return fmt.Sprintf("killed by signal %d", e.Signal) }

var errDeadline = errors.New("run deadline exceeded")

// Run instantiates the module and runs _start to completion. Cancel ctx
// with context.WithCancelCause and a *KilledError to kill it.
func (m *Module) Run(ctx context.Context, cfg RunConfig) Result {
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, cfg.Timeout, errDeadline)
		defer cancel()
	}
	alloc := &limitedAllocator{limit: m.limit}
	ictx := experimental.WithMemoryAllocator(ctx, alloc)

	mc := wazero.NewModuleConfig().
		// Anonymous: many instances of one module may live at once.
		WithName("").
		WithArgs(cfg.Args...).
		WithSysWalltime().WithSysNanotime().WithSysNanosleep().
		WithRandSource(rand.Reader).
		WithFSConfig(fsConfig(cfg.Mounts))
	if cfg.Stdin != nil {
		mc = mc.WithStdin(cfg.Stdin)
	}
	if cfg.Stdout != nil {
		mc = mc.WithStdout(cfg.Stdout)
	}
	if cfg.Stderr != nil {
		mc = mc.WithStderr(cfg.Stderr)
	}
	for _, kv := range cfg.Env {
		k, v, _ := strings.Cut(kv, "=")
		if k != "" {
			mc = mc.WithEnv(k, v)
		}
	}
	mod, err := m.rt.InstantiateModule(ictx, m.compiled, mc)
	if mod != nil {
		// Close frees the instance's memory now rather than at GC.
		_ = mod.Close(context.Background())
	}
	return classify(ctx, err, alloc)
}

func fsConfig(mounts []Mount) wazero.FSConfig {
	fc := wazero.NewFSConfig()
	for _, mnt := range mounts {
		if mnt.ReadOnly {
			fc = fc.WithReadOnlyDirMount(mnt.HostPath, mnt.GuestPath)
		} else {
			fc = fc.WithDirMount(mnt.HostPath, mnt.GuestPath)
		}
	}
	return fc
}

// classify turns wazero's outcome into a Result. The order matters: a
// module that hit its memory limit usually dies of it in some other way
// (Go's runtime exits 2, Rust traps), and the limit is the real reason.
func classify(ctx context.Context, err error, alloc *limitedAllocator) Result {
	if wanted := alloc.refused.Load(); wanted > 0 {
		return Result{ExitCode: ExitCodeOOM, Reason: ReasonOOMKilled,
			Message: (&OOMError{Limit: alloc.limit, Wanted: wanted}).Error()}
	}
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		var k *KilledError
		switch {
		case errors.As(cause, &k):
			return Result{ExitCode: 128 + k.Signal, Reason: ReasonKilled, Message: k.Error()}
		case errors.Is(cause, errDeadline):
			return Result{ExitCode: ExitCodeDeadline, Reason: ReasonDeadlineExceeded,
				Message: "wasm module stopped: " + errDeadline.Error()}
		default:
			return Result{ExitCode: 128 + 9, Reason: ReasonKilled, Message: "wasm module stopped: " + cause.Error()}
		}
	}
	if err == nil {
		return Result{Reason: ReasonCompleted}
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		code := int(exit.ExitCode())
		if code == 0 {
			return Result{Reason: ReasonCompleted}
		}
		return Result{ExitCode: code, Reason: ReasonError}
	}
	return Result{ExitCode: ExitCodeTrap, Reason: ReasonTrap, Message: "wasm module trapped: " + trapMessage(err)}
}

// trapMessage keeps the "wasm error: ..." part of wazero's error, without
// its "module[] function[_start] failed:" prefix and stack trace.
func trapMessage(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, "wasm error:"); i >= 0 {
		s = s[i:]
	}
	return s
}

// limitedAllocator backs one instance's linear memory and refuses growth
// past the limit, remembering that it did: wazero's own page limit fails
// memory.grow silently, and the shim must be able to say "OOMKilled".
type limitedAllocator struct {
	limit   uint64
	refused atomic.Uint64 // bytes wanted by the first refused growth
}

func (a *limitedAllocator) Allocate(capacity, max uint64) experimental.LinearMemory {
	return &linearMemory{a: a, capacity: capacity}
}

type linearMemory struct {
	a        *limitedAllocator
	capacity uint64
	buf      []byte
}

func (l *linearMemory) Reallocate(size uint64) []byte {
	if l.a.limit > 0 && size > l.a.limit {
		l.a.refused.CompareAndSwap(0, size)
		return nil
	}
	if size <= uint64(cap(l.buf)) {
		l.buf = l.buf[:size]
		return l.buf
	}
	// Grow geometrically, as append would, but never past the limit.
	newCap := max(size, uint64(cap(l.buf))*2, l.capacity)
	if l.a.limit > 0 {
		newCap = min(newCap, l.a.limit)
	}
	nb := make([]byte, size, newCap)
	copy(nb, l.buf)
	l.buf = nb
	return nb
}

func (l *linearMemory) Free() { l.buf = nil }

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	tasktypes "github.com/containerd/containerd/api/types/task"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/strata-dev/strata/pkg/wasm"
)

// How a container says it is an HTTP handler and how it is limited: an
// environment variable (set in the image by `strata image build --wasm
// --http-port`, or in the pod spec) or a pod annotation that containerd
// passes through (pod_annotations = ["wasm.strata.dev/*"]). The annotation
// wins.
const (
	envHTTPPort       = "STRATA_WASM_HTTP_PORT"
	envRequestTimeout = "STRATA_WASM_REQUEST_TIMEOUT"
	envRunTimeout     = "STRATA_WASM_RUN_TIMEOUT"
	envConcurrency    = "STRATA_WASM_HTTP_CONCURRENCY"
	annPrefix         = "wasm.strata.dev/"
	annHTTPPort       = annPrefix + "http-port"
	annRequestTimeout = annPrefix + "request-timeout"
	annRunTimeout     = annPrefix + "run-timeout"
	annConcurrency    = annPrefix + "http-concurrency"

	// The kubelet's default terminationMessagePath; CRI passes the
	// container's own path as this annotation only when containerd's
	// container_annotations lets it through.
	defaultTerminationLog = "/dev/termination-log"
	annTerminationPath    = "io.kubernetes.container.terminationMessagePath"
)

type kind string

const (
	kindSandbox kind = "sandbox"
	kindCommand kind = "command"
	kindHTTP    kind = "http"
)

type taskState struct {
	status     tasktypes.Status
	exitStatus uint32
	exitedAt   time.Time
}

type task struct {
	s      *service
	id     string
	bundle string
	kind   kind
	pid    int
	io     *stdio
	spec   *specs.Spec

	rootfs         string // mounted by us, unmounted in cleanup
	terminationLog string // host path of the termination-log file
	module         *wasm.Module
	runCfg         wasm.RunConfig
	httpCfg        wasm.HTTPConfig
	netns          string
	port           int

	pause    *exec.Cmd
	listener net.Listener
	server   *http.Server

	mu     sync.Mutex
	st     taskState
	cancel context.CancelCauseFunc
	done   chan struct{}
}

func newTask(ctx context.Context, s *service, r *taskapi.CreateTaskRequest) (_ *task, err error) {
	spec, err := readSpec(r.Bundle)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	t := &task{s: s, id: r.ID, bundle: r.Bundle, spec: spec, pid: os.Getpid(),
		st: taskState{status: tasktypes.Status_CREATED}, done: make(chan struct{})}
	t.netns = netnsPath(spec)
	if spec.Annotations[annContainerType] == "sandbox" {
		t.kind = kindSandbox
		t.io = &stdio{}
		cmd, err := s.startPause(r.Bundle, t.netns)
		if err != nil {
			return nil, err
		}
		t.pause, t.pid = cmd, cmd.Process.Pid
		go func() {
			err := cmd.Wait()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					code = 128 + int(ws.Signal())
				} else {
					code = ee.ExitCode()
				}
			}
			t.finish(wasm.Result{ExitCode: code})
		}()
		return t, nil
	}

	defer func() {
		if err != nil {
			t.cleanup()
		}
	}()
	if t.io, err = openStdio(r.Stdin, r.Stdout, r.Stderr); err != nil {
		return nil, err
	}
	if spec.Process == nil || len(spec.Process.Args) == 0 {
		return nil, status.Error(codes.InvalidArgument, "the OCI spec has no process args: the image needs an entrypoint naming the .wasm module")
	}
	t.terminationLog = terminationLogPath(spec)
	if len(r.Rootfs) > 0 {
		t.rootfs = filepath.Join(r.Bundle, "rootfs")
		if err := mountRootfs(r.Rootfs, t.rootfs); err != nil {
			t.rootfs = ""
			return nil, err
		}
	}
	root := t.rootfs
	if root == "" && spec.Root != nil {
		root = spec.Root.Path
		if !filepath.IsAbs(root) {
			root = filepath.Join(r.Bundle, root)
		}
	}
	wasmBytes, err := s.module(ctx, spec, root)
	if err != nil {
		t.writeTerminationLog(err.Error())
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	var limit uint64
	if l := spec.Linux; l != nil && l.Resources != nil && l.Resources.Memory != nil && l.Resources.Memory.Limit != nil && *l.Resources.Memory.Limit > 0 {
		limit = uint64(*l.Resources.Memory.Limit)
	}
	start := time.Now()
	t.module, err = s.engine.Compile(ctx, wasmBytes, wasm.Options{MemoryLimit: limit})
	if err != nil {
		t.writeTerminationLog(err.Error())
		return nil, status.Errorf(codes.FailedPrecondition, "%s: %v", spec.Process.Args[0], err)
	}
	// Compiling a large module (a Go one is megabytes) leaves hundreds of
	// MB of garbage; hand it back now, not at the next GC cycles, so an
	// idle pod's shim stays small.
	debug.FreeOSMemory()
	klog.InfoS("Compiled module", "id", r.ID, "module", spec.Process.Args[0], "digest", t.module.Digest, "duration", time.Since(start))

	env := append([]string(nil), spec.Process.Env...)
	if spec.Process.Cwd != "" && lookup(env, "PWD") == "" {
		// Go and wasi-libc take the working directory from PWD.
		env = append(env, "PWD="+spec.Process.Cwd)
	}
	mounts := preopens(spec)
	settings := func(ann, envName string) string {
		if v := spec.Annotations[ann]; v != "" {
			return v
		}
		return lookup(env, envName)
	}
	if p := settings(annHTTPPort, envHTTPPort); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return nil, status.Errorf(codes.InvalidArgument, "HTTP port %q (%s or %s): want 1-65535", p, envHTTPPort, annHTTPPort)
		}
		timeout, err := duration(settings(annRequestTimeout, envRequestTimeout), 10*time.Second)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "request timeout: %v", err)
		}
		conc, _ := strconv.Atoi(settings(annConcurrency, envConcurrency))
		t.kind, t.port = kindHTTP, port
		t.httpCfg = wasm.HTTPConfig{Args: spec.Process.Args, Env: env, Mounts: mounts, Timeout: timeout,
			MaxConcurrent: conc, Stderr: t.io.stderrW(), Port: port}
		return t, nil
	}
	timeout, err := duration(settings(annRunTimeout, envRunTimeout), 0)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "run timeout: %v", err)
	}
	t.kind = kindCommand
	t.runCfg = wasm.RunConfig{Args: spec.Process.Args, Env: env, Mounts: mounts, Timeout: timeout,
		Stdin: t.io.stdinR(), Stdout: t.io.stdoutW(), Stderr: t.io.stderrW()}
	return t, nil
}

func (t *task) start() error {
	t.mu.Lock()
	if t.st.status != tasktypes.Status_CREATED {
		t.mu.Unlock()
		return status.Errorf(codes.FailedPrecondition, "task %s is %s, not created", t.id, t.st.status)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	t.cancel = cancel
	t.st.status = tasktypes.Status_RUNNING
	t.mu.Unlock()

	switch t.kind {
	case kindSandbox:
		return nil
	case kindHTTP:
		l, err := listenInNetns(t.netns, ":"+strconv.Itoa(t.port))
		if err != nil {
			t.finish(wasm.Result{ExitCode: 1, Reason: wasm.ReasonError, Message: err.Error()})
			return status.Error(codes.Internal, err.Error())
		}
		t.listener = l
		t.server = &http.Server{Handler: releaseWhenIdle(wasm.NewHandler(t.module, t.httpCfg)), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			err := t.server.Serve(l)
			if errors.Is(err, http.ErrServerClosed) {
				return // kill decides the exit status
			}
			t.finish(wasm.Result{ExitCode: 1, Reason: wasm.ReasonError, Message: "HTTP server: " + err.Error()})
		}()
		klog.InfoS("Serving wasm HTTP handler", "id", t.id, "port", t.port, "netns", t.netns)
		return nil
	default:
		go func() {
			res := t.module.Run(ctx, t.runCfg)
			t.finish(res)
		}()
		return nil
	}
}

// finish records the exit once, reports it and wakes Wait.
func (t *task) finish(res wasm.Result) {
	t.mu.Lock()
	if t.st.status == tasktypes.Status_STOPPED {
		t.mu.Unlock()
		return
	}
	wasRunning := t.st.status == tasktypes.Status_RUNNING
	t.st = taskState{status: tasktypes.Status_STOPPED, exitStatus: uint32(res.ExitCode), exitedAt: time.Now()}
	t.mu.Unlock()
	if res.Message != "" {
		klog.InfoS("Task ended", "id", t.id, "reason", res.Reason, "exitCode", res.ExitCode, "message", res.Message)
		t.writeTerminationLog(fmt.Sprintf("%s: %s", res.Reason, res.Message))
		if t.io != nil {
			fmt.Fprintf(t.io.stderrW(), "strata-wasm: %s: %s\n", res.Reason, res.Message)
		}
	}
	if t.io != nil {
		t.io.close()
	}
	close(t.done)
	if wasRunning || t.kind == kindSandbox {
		t.s.exited(t, res.Reason == wasm.ReasonOOMKilled)
	}
}

func (t *task) state() taskState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st
}

func (t *task) kill(sig syscall.Signal) error {
	st := t.state()
	if st.status == tasktypes.Status_STOPPED {
		return status.Errorf(codes.NotFound, "task %s: process already finished", t.id)
	}
	if sig != syscall.SIGKILL && sig != syscall.SIGTERM && sig != syscall.SIGINT {
		// Modules cannot receive signals; treat the rest like runc does
		// for a process without handlers only where it matters.
		klog.InfoS("Ignoring signal for wasm task", "id", t.id, "signal", sig)
		return nil
	}
	switch {
	case t.kind == kindSandbox:
		if err := t.pause.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return status.Errorf(codes.Internal, "signal pause process: %v", err)
		}
	case st.status == tasktypes.Status_CREATED:
		t.finish(wasm.Result{ExitCode: 128 + int(sig), Reason: wasm.ReasonKilled})
	case t.kind == kindHTTP:
		go func() {
			// SIGTERM lets requests in flight finish (they have their own
			// deadline); SIGKILL drops them.
			code := 0
			if sig == syscall.SIGKILL {
				code = 128 + int(sig)
				_ = t.server.Close()
				t.cancel(&wasm.KilledError{Signal: int(sig)})
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), t.httpCfg.Timeout)
				_ = t.server.Shutdown(ctx)
				cancel()
			}
			t.finish(wasm.Result{ExitCode: code})
		}()
	default:
		t.cancel(&wasm.KilledError{Signal: int(sig)})
	}
	return nil
}

// cleanup releases everything the task holds; the task must be stopped.
func (t *task) cleanup() {
	if t.server != nil {
		_ = t.server.Close()
	}
	if t.listener != nil {
		_ = t.listener.Close()
	}
	if t.cancel != nil {
		t.cancel(errors.New("task deleted"))
	}
	if t.module != nil {
		_ = t.module.Close(context.Background())
	}
	if t.io != nil {
		t.io.close()
	}
	if t.rootfs != "" {
		if err := unmountRootfs(t.rootfs); err != nil {
			klog.ErrorS(err, "Unmount rootfs", "id", t.id)
		}
	}
	if t.kind == kindSandbox {
		_ = os.Remove(filepath.Join(t.bundle, pausePidFile))
	}
}

func (t *task) writeTerminationLog(msg string) {
	if t.terminationLog == "" {
		return
	}
	// The kubelet created the file; never create one elsewhere.
	f, err := os.OpenFile(t.terminationLog, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		klog.ErrorS(err, "Write termination message", "id", t.id)
		return
	}
	defer f.Close()
	_, _ = io.WriteString(f, msg+"\n")
}

func netnsPath(spec *specs.Spec) string {
	if spec.Linux == nil {
		return ""
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			return ns.Path
		}
	}
	return ""
}

func terminationLogPath(spec *specs.Spec) string {
	dest := spec.Annotations[annTerminationPath]
	if dest == "" {
		dest = defaultTerminationLog
	}
	for _, m := range spec.Mounts {
		if m.Destination == dest {
			return m.Source
		}
	}
	return ""
}

// preopens are the spec's bind mounts of directories: volumes, secrets,
// config maps, the service account token. Files (/etc/hosts, the
// termination log) cannot be WASI preopens; /dev, /proc and /sys are the
// runtime's, not the pod's.
func preopens(spec *specs.Spec) []wasm.Mount {
	var out []wasm.Mount
	for _, m := range spec.Mounts {
		bind, ro := m.Type == "bind", false
		for _, o := range m.Options {
			switch o {
			case "bind", "rbind":
				bind = true
			case "ro":
				ro = true
			}
		}
		d := path.Clean(m.Destination)
		if !bind || d == "/dev" || d == "/proc" || d == "/sys" ||
			strings.HasPrefix(d, "/dev/") || strings.HasPrefix(d, "/proc/") || strings.HasPrefix(d, "/sys/") {
			continue
		}
		if st, err := os.Stat(m.Source); err != nil || !st.IsDir() {
			continue
		}
		out = append(out, wasm.Mount{HostPath: m.Source, GuestPath: d, ReadOnly: ro})
	}
	return out
}

func lookup(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val // the last one wins, as in a process environment
		}
	}
	return v
}

func duration(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}

// releaseWhenIdle returns the memory of finished instances to the OS once
// no request has run for a moment. Each request's instance has its own
// linear memory (megabytes for a Go module); without this an idle pod's
// shim would keep its busiest moment's heap until Go's scavenger, slowly,
// gives it back.
func releaseWhenIdle(h http.Handler) http.Handler {
	var mu sync.Mutex
	inflight := 0
	var timer *time.Timer
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inflight++
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		defer func() {
			mu.Lock()
			defer mu.Unlock()
			if inflight--; inflight == 0 {
				timer = time.AfterFunc(500*time.Millisecond, debug.FreeOSMemory)
			}
		}()
		h.ServeHTTP(w, r)
	})
}

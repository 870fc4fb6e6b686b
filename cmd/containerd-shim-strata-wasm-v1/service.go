package main

import (
	"context"
	"fmt"
	"github.com/strata-dev/strata/pkg/layout"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/klog/v2"

	"github.com/strata-dev/strata/pkg/wasm"
)

// Environment of the shim process (set in containerd's environment; the
// shim inherits it).
const (
	// cacheDirEnv is where compiled modules are kept across pods and shims;
	// strata server sets it, a node set up by the installer uses the
	// default (which the installer removes again).
	cacheDirEnv     = layout.EnvWasmCacheDir
	defaultCacheDir = "/var/cache/containerd-shim-strata-wasm"
)

type service struct {
	ns        string
	engine    *wasm.Engine
	events    *publisher
	store     *store
	self      string
	mu        sync.Mutex
	tasks     map[string]*task
	shutdown  chan struct{}
	closeOnce sync.Once
}

func newService(ns, address, ttrpcAddr string) (*service, error) {
	dir := os.Getenv(cacheDirEnv)
	if dir == "" {
		dir = defaultCacheDir
	}
	engine, err := wasm.NewEngine(dir)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return &service{ns: ns, engine: engine, events: newPublisher(ns, ttrpcAddr), store: &store{address: address, ns: ns}, self: self,
		tasks: map[string]*task{}, shutdown: make(chan struct{})}, nil
}

// run serves the task API until Shutdown finds no task left.
func (s *service) run(ctx context.Context, l net.Listener) error {
	srv, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(recoverPanics))
	if err != nil {
		return err
	}
	taskapi.RegisterTTRPCTaskService(srv, s)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, l) }()
	select {
	case err := <-errc:
		return err
	case <-s.shutdown:
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	s.events.close()
	_ = s.engine.Close(ctx)
	return errNoContainers
}

// recoverPanics keeps one bad request from taking down the shim, and with
// it every other container of the pod.
func recoverPanics(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, method ttrpc.Method) (resp interface{}, err error) {
	defer func() {
		if p := recover(); p != nil {
			klog.ErrorS(nil, "Panic in task API call", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "shim panic in %s: %v", info.FullMethod, p)
		}
	}()
	return method(ctx, unmarshal)
}

func (s *service) get(id string) (*task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "task %s not found", id)
	}
	return t, nil
}

func (s *service) Create(ctx context.Context, r *taskapi.CreateTaskRequest) (*taskapi.CreateTaskResponse, error) {
	if r.Terminal {
		return nil, status.Error(codes.InvalidArgument, "wasm tasks have no terminal (tty: true is not supported)")
	}
	s.mu.Lock()
	if _, ok := s.tasks[r.ID]; ok {
		s.mu.Unlock()
		return nil, status.Errorf(codes.AlreadyExists, "task %s exists", r.ID)
	}
	s.mu.Unlock()
	t, err := newTask(ctx, s, r)
	if err != nil {
		klog.ErrorS(err, "Create task", "id", r.ID)
		return nil, err
	}
	s.mu.Lock()
	s.tasks[r.ID] = t
	s.mu.Unlock()
	klog.InfoS("Created task", "id", r.ID, "kind", t.kind, "pid", t.pid)
	s.events.publish("/tasks/create", &eventstypes.TaskCreate{
		ContainerID: r.ID, Bundle: r.Bundle, Rootfs: r.Rootfs,
		IO:  &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Pid: uint32(t.pid),
	})
	return &taskapi.CreateTaskResponse{Pid: uint32(t.pid)}, nil
}

func (s *service) Start(ctx context.Context, r *taskapi.StartRequest) (*taskapi.StartResponse, error) {
	if r.ExecID != "" {
		return nil, errNoExec
	}
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if err := t.start(); err != nil {
		klog.ErrorS(err, "Start task", "id", r.ID)
		return nil, err
	}
	s.events.publish("/tasks/start", &eventstypes.TaskStart{ContainerID: r.ID, Pid: uint32(t.pid)})
	return &taskapi.StartResponse{Pid: uint32(t.pid)}, nil
}

// exited is called once per task when it stops, in the order CRI expects:
// OOM first so the exit is recorded as OOMKilled.
func (s *service) exited(t *task, oom bool) {
	if oom {
		s.events.publish("/tasks/oom", &eventstypes.TaskOOM{ContainerID: t.id})
	}
	st := t.state()
	s.events.publish("/tasks/exit", &eventstypes.TaskExit{
		ContainerID: t.id, ID: t.id, Pid: uint32(t.pid),
		ExitStatus: st.exitStatus, ExitedAt: timestamppb.New(st.exitedAt),
	})
}

func (s *service) Delete(ctx context.Context, r *taskapi.DeleteRequest) (*taskapi.DeleteResponse, error) {
	if r.ExecID != "" {
		return nil, errNoExec
	}
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	st := t.state()
	if st.status == tasktypes.Status_RUNNING {
		return nil, status.Errorf(codes.FailedPrecondition, "task %s is running: kill it first", r.ID)
	}
	if st.status == tasktypes.Status_CREATED {
		t.finish(wasm.Result{ExitCode: 128 + int(syscall.SIGKILL), Reason: wasm.ReasonKilled})
		st = t.state()
	}
	t.cleanup()
	s.mu.Lock()
	delete(s.tasks, r.ID)
	s.mu.Unlock()
	klog.InfoS("Deleted task", "id", r.ID)
	s.events.publish("/tasks/delete", &eventstypes.TaskDelete{
		ContainerID: r.ID, ID: r.ID, Pid: uint32(t.pid),
		ExitStatus: st.exitStatus, ExitedAt: timestamppb.New(st.exitedAt),
	})
	return &taskapi.DeleteResponse{Pid: uint32(t.pid), ExitStatus: st.exitStatus, ExitedAt: timestamppb.New(st.exitedAt)}, nil
}

func (s *service) State(ctx context.Context, r *taskapi.StateRequest) (*taskapi.StateResponse, error) {
	if r.ExecID != "" {
		return nil, errNoExec
	}
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	st := t.state()
	resp := &taskapi.StateResponse{
		ID: t.id, Bundle: t.bundle, Pid: uint32(t.pid), Status: st.status,
		Stdin: t.io.stdin, Stdout: t.io.stdout, Stderr: t.io.stderr,
		ExitStatus: st.exitStatus,
	}
	if !st.exitedAt.IsZero() {
		resp.ExitedAt = timestamppb.New(st.exitedAt)
	}
	return resp, nil
}

func (s *service) Kill(ctx context.Context, r *taskapi.KillRequest) (*emptypb.Empty, error) {
	if r.ExecID != "" {
		return nil, errNoExec
	}
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if err := t.kill(syscall.Signal(r.Signal)); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (s *service) Wait(ctx context.Context, r *taskapi.WaitRequest) (*taskapi.WaitResponse, error) {
	if r.ExecID != "" {
		return nil, errNoExec
	}
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	select {
	case <-t.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	st := t.state()
	return &taskapi.WaitResponse{ExitStatus: st.exitStatus, ExitedAt: timestamppb.New(st.exitedAt)}, nil
}

func (s *service) Pids(ctx context.Context, r *taskapi.PidsRequest) (*taskapi.PidsResponse, error) {
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	return &taskapi.PidsResponse{Processes: []*tasktypes.ProcessInfo{{Pid: uint32(t.pid)}}}, nil
}

func (s *service) Connect(ctx context.Context, r *taskapi.ConnectRequest) (*taskapi.ConnectResponse, error) {
	resp := &taskapi.ConnectResponse{ShimPid: uint32(os.Getpid()), Version: "strata-wasm-v1"}
	if t, err := s.get(r.ID); err == nil {
		resp.TaskPid = uint32(t.pid)
	}
	return resp, nil
}

// Shutdown ends the shim once its last task is deleted; containerd calls
// it after every task Delete.
func (s *service) Shutdown(ctx context.Context, r *taskapi.ShutdownRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	n := len(s.tasks)
	s.mu.Unlock()
	if n == 0 {
		// After this reply is on its way.
		s.closeOnce.Do(func() { time.AfterFunc(50*time.Millisecond, func() { close(s.shutdown) }) })
	}
	return &emptypb.Empty{}, nil
}

func (s *service) CloseIO(ctx context.Context, r *taskapi.CloseIORequest) (*emptypb.Empty, error) {
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	t.io.closeStdin()
	return &emptypb.Empty{}, nil
}

// Update accepts resource changes without applying them: a running
// module's memory limit is fixed at instantiation.
func (s *service) Update(ctx context.Context, r *taskapi.UpdateTaskRequest) (*emptypb.Empty, error) {
	if _, err := s.get(r.ID); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// Stats has no cgroup to read: wasm tasks run inside the shim.
func (s *service) Stats(ctx context.Context, r *taskapi.StatsRequest) (*taskapi.StatsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "stats are not available for wasm tasks")
}

var errNoExec = status.Error(codes.Unimplemented, "exec is not supported for wasm tasks")

func (s *service) Exec(ctx context.Context, r *taskapi.ExecProcessRequest) (*emptypb.Empty, error) {
	return nil, errNoExec
}

func (s *service) ResizePty(ctx context.Context, r *taskapi.ResizePtyRequest) (*emptypb.Empty, error) {
	return nil, status.Error(codes.Unimplemented, "wasm tasks have no terminal")
}

func (s *service) Pause(ctx context.Context, r *taskapi.PauseRequest) (*emptypb.Empty, error) {
	return nil, status.Error(codes.Unimplemented, "pause is not supported for wasm tasks")
}

func (s *service) Resume(ctx context.Context, r *taskapi.ResumeRequest) (*emptypb.Empty, error) {
	return nil, status.Error(codes.Unimplemented, "resume is not supported for wasm tasks")
}

func (s *service) Checkpoint(ctx context.Context, r *taskapi.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, status.Error(codes.Unimplemented, "checkpoint is not supported for wasm tasks")
}

// startPause runs the sandbox's pause process in the pod network namespace.
func (s *service) startPause(bundle, netns string) (*exec.Cmd, error) {
	cmd := exec.Command(s.self, "pause", netns)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// Dies with the shim: nothing else would reap or stop it.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sandbox pause process: %w", err)
	}
	if err := os.WriteFile(filepath.Join(bundle, pausePidFile), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("record pause pid: %w", err)
	}
	return cmd, nil
}

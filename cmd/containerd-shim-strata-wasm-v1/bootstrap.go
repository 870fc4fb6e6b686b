package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/strata-dev/strata/pkg/layout"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/klog/v2"
)

const (
	annContainerType = "io.kubernetes.cri.container-type"
	annSandboxID     = "io.kubernetes.cri.sandbox-id"
	// socketDirEnv overrides where shim sockets live (default, like runc's
	// shim, /run/containerd/s).
	socketDirEnv = layout.EnvWasmSocketDir
	// scopeEnv=node makes one shim serve every wasm pod of the containerd
	// namespace instead of one shim per pod: pods then share compiled
	// modules and the shim's own memory, at the price of one process whose
	// failure stops all of them.
	scopeEnv = layout.EnvWasmShimScope
)

// group says which tasks share a shim: a pod's tasks (CRI's sandbox id),
// or all of them in "node" scope.
func group(f flags, spec *specs.Spec) string {
	if os.Getenv(scopeEnv) == "node" {
		return "node"
	}
	if sb := spec.Annotations[annSandboxID]; sb != "" {
		return sb
	}
	return f.id
}

func readSpec(bundle string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("read OCI spec: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse OCI spec: %w", err)
	}
	return &s, nil
}

// socketPath is the shim's socket for a group of tasks. CRI puts a pod's
// containers in one group (the sandbox id), so one shim serves a pod; the
// containerd address is part of the hash so that two containerds on one
// host never share a shim.
func socketPath(f flags, group string) string {
	dir := os.Getenv(socketDirEnv)
	if dir == "" {
		dir = "/run/containerd/s"
	}
	sum := sha256.Sum256([]byte(f.address + "\x00" + f.namespace + "\x00" + group))
	return filepath.Join(dir, "wasm-"+hex.EncodeToString(sum[:12]))
}

// start prints the address of the shim serving this task, starting one
// if the task's group has none yet.
func start(f flags) error {
	bundle, err := os.Getwd()
	if err != nil {
		return err
	}
	spec, err := readSpec(bundle)
	if err != nil {
		return err
	}
	sock := socketPath(f, group(f, spec))
	addr := "unix://" + sock
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		c.Close()
		if err := os.WriteFile(filepath.Join(bundle, "address"), []byte(addr), 0o600); err != nil {
			return fmt.Errorf("write address: %w", err)
		}
		fmt.Print(addr)
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(sock), 0o711); err != nil {
		return fmt.Errorf("create socket dir: %w", err)
	}
	_ = os.Remove(sock) // stale, nobody answered
	l, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", sock, err)
	}
	lf, err := l.(*net.UnixListener).File()
	if err != nil {
		l.Close()
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"-namespace", f.namespace, "-address", f.address, "-publish-binary", f.publishBinary, "-id", f.id}
	if f.debug {
		args = append(args, "-debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = bundle
	cmd.ExtraFiles = []*os.File{lf}
	// Its own session: the shim outlives this "start" process and must not
	// get signals meant for containerd's process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		l.Close()
		os.Remove(sock)
		return fmt.Errorf("start shim: %w", err)
	}
	lf.Close()
	// The listener's socket file now belongs to the child; closing our
	// copy of the fd must not unlink it.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	_ = cmd.Process.Release()
	if err := os.WriteFile(filepath.Join(bundle, "address"), []byte(addr), 0o600); err != nil {
		return fmt.Errorf("write address: %w", err)
	}
	fmt.Print(addr)
	return nil
}

// deleteBundle cleans up a task whose shim is gone: containerd calls it
// when the shim died (or never answered), so nothing else will.
func deleteBundle(f flags) error {
	bundle := f.bundle
	if bundle == "" {
		var err error
		if bundle, err = os.Getwd(); err != nil {
			return err
		}
	}
	if b, err := os.ReadFile(filepath.Join(bundle, pausePidFile)); err == nil {
		var pid int
		if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &pid); err == nil && pid > 1 && isPause(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if err := unmountRootfs(filepath.Join(bundle, "rootfs")); err != nil {
		klog.ErrorS(err, "Unmount rootfs", "bundle", bundle)
	}
	// A shim that died left its socket; one that answers is serving the
	// pod's other containers and keeps it.
	if spec, err := readSpec(bundle); err == nil {
		sock := socketPath(f, group(f, spec))
		if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
			c.Close()
		} else {
			_ = os.Remove(sock)
		}
	}
	out, err := proto.Marshal(&taskapi.DeleteResponse{
		ExitedAt:   timestamppb.Now(),
		ExitStatus: 128 + uint32(syscall.SIGKILL),
	})
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}

// isPause checks that pid is still one of our pause processes before the
// delete command signals it (pids are reused).
func isPause(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	return len(args) > 1 && strings.HasSuffix(args[0], "containerd-shim-strata-wasm-v1") && args[1] == "pause"
}

var errNoContainers = errors.New("no containers left")

// serve runs the long-lived shim on the listener passed as fd 3.
func serve(f flags) error {
	if f.namespace == "" {
		return errors.New("-namespace is required")
	}
	// containerd reads the "log" fifo in the bundle into its own log; the
	// shim's stderr goes there (klog, and any panic). Non-blocking: once
	// containerd stops reading (the first task is deleted), a full fifo
	// must drop log lines, not hang the shim.
	if lf, err := os.OpenFile("log", os.O_RDWR|syscall.O_NONBLOCK, 0); err == nil {
		_ = syscall.Dup2(int(lf.Fd()), 2)
		lf.Close()
	}
	l, err := net.FileListener(os.NewFile(3, "shim-socket"))
	if err != nil {
		return fmt.Errorf("shim socket from fd 3: %w", err)
	}
	ttrpcAddr := os.Getenv("TTRPC_ADDRESS")
	if ttrpcAddr == "" {
		ttrpcAddr = f.address + ".ttrpc"
	}
	svc, err := newService(f.namespace, f.address, ttrpcAddr)
	if err != nil {
		return err
	}
	sock := l.Addr().String()
	err = svc.run(context.Background(), l)
	_ = os.Remove(sock)
	if errors.Is(err, errNoContainers) {
		return nil
	}
	return err
}

package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/strata-dev/strata/pkg/fileutil"
	"k8s.io/klog/v2"
)

// containerdConfig is containerd 1.6's version 2 configuration. It keeps
// containerd's root and state apart from a system containerd, and points
// CRI at Strata's CNI network, sandbox image and registry hosts.
var containerdConfig = template.Must(template.New("containerd").Parse(`version = 2
root = "{{.Root}}"
state = "{{.State}}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{{.Socket}}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{.SandboxImage}}"
  # The machine may lack CAP_SYS_RESOURCE; without this every sandbox fails
  # to write /proc/self/oom_score_adj.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
{{- if .RuncBinary}}
        BinaryName = "{{.RuncBinary}}"
{{- end}}
{{- range .ExtraRuntimes}}
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{{.Name}}]
      runtime_type = "{{.Type}}"
{{- if .PodAnnotations}}
      pod_annotations = [{{range $i, $a := .PodAnnotations}}{{if $i}}, {{end}}"{{$a}}"{{end}}]
{{- end}}
{{- if .ContainerAnnotations}}
      container_annotations = [{{range $i, $a := .ContainerAnnotations}}{{if $i}}, {{end}}"{{$a}}"{{end}}]
{{- end}}
{{- end}}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{{.CNIBinDir}}"
    conf_dir = "{{.CNIConfDir}}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{{.RegistryHostsDir}}"
`))

// Runtime is an extra containerd runtime handler (a RuntimeClass handler).
type Runtime struct {
	Name string
	Type string
	// PodAnnotations and ContainerAnnotations are the annotation keys
	// (globs) CRI passes into the OCI spec for this runtime's shim.
	PodAnnotations       []string
	ContainerAnnotations []string
}

// Containerd supervises a containerd child process.
type Containerd struct {
	Binary           string
	Root, State      string
	Socket           string
	SandboxImage     string
	CNIBinDir        string
	CNIConfDir       string
	RegistryHostsDir string
	ExtraRuntimes    []Runtime
	// RuncBinary replaces runc for the default runtime (the DRA GPU
	// driver's wrapper, which applies CDI devices that containerd 1.6
	// ignores); empty means runc from PATH.
	RuncBinary string
	// Env is added to containerd's environment, which its shims inherit
	// (PATH is how containerd finds a runtime's shim binary).
	Env     []string
	LogFile string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Endpoint is the CRI endpoint for the kubelet.
func (c *Containerd) Endpoint() string { return "unix://" + c.Socket }

// WriteConfig renders containerd's configuration file.
func (c *Containerd) WriteConfig(file string) error {
	var buf bytes.Buffer
	if err := containerdConfig.Execute(&buf, c); err != nil {
		return fmt.Errorf("render containerd config: %w", err)
	}
	return fileutil.WriteAtomic(file, buf.Bytes(), 0o644)
}

// Run starts containerd, calls ready once its socket accepts connections,
// and returns an error when containerd exits on its own; when ctx ends it
// stops containerd and returns nil. The caller decides whether to run it
// again (the server's supervisor restarts it with back-off).
func (c *Containerd) Run(ctx context.Context, configFile string, ready func()) error {
	if err := c.Start(ctx, configFile); err != nil {
		return err
	}
	ready()
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	select {
	case <-exited:
		return fmt.Errorf("containerd (pid %d) exited: %s; see %s", cmd.Process.Pid, cmd.ProcessState, c.LogFile)
	case <-ctx.Done():
		c.Stop()
		return nil
	}
}

// Start writes the config, starts containerd and waits until its socket
// accepts connections.
func (c *Containerd) Start(ctx context.Context, configFile string) error {
	if err := c.WriteConfig(configFile); err != nil {
		return err
	}
	for _, d := range []string{c.Root, c.State, filepath.Dir(c.Socket), filepath.Dir(c.LogFile)} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := c.spawn(configFile); err != nil {
		return err
	}
	if err := c.waitReady(ctx, 30*time.Second); err != nil {
		c.Stop()
		return err
	}
	return nil
}

func (c *Containerd) spawn(configFile string) error {
	logf, err := os.OpenFile(c.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open containerd log: %w", err)
	}
	// A stale socket from a crash would make containerd refuse to start.
	_ = os.Remove(c.Socket)
	cmd := exec.Command(c.Binary, "--config", configFile)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a Ctrl-C in the terminal reaches Strata, which
		// then stops the pods before it stops containerd.
		Setpgid: true,
		// If Strata is killed, containerd goes too; containers stay with
		// their shims and are adopted again at the next start.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start containerd %s: %w", c.Binary, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	c.mu.Lock()
	c.cmd, c.exited = cmd, exited
	c.mu.Unlock()
	klog.InfoS("Started containerd", "pid", cmd.Process.Pid, "config", configFile)
	return nil
}

func (c *Containerd) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c.mu.Lock()
	exited := c.exited
	c.mu.Unlock()
	for {
		conn, err := net.DialTimeout("unix", c.Socket, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("containerd exited during start-up; see %s", c.LogFile)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd socket %s not ready after %s; see %s", c.Socket, timeout, c.LogFile)
		}
	}
}

// Stop terminates containerd: SIGTERM, then SIGKILL after a grace period.
func (c *Containerd) Stop() {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// ErrNoContainerd names the missing binary and how to install it.
var ErrNoContainerd = errors.New("containerd not found")

// FindContainerd resolves the containerd binary or explains how to get it.
func FindContainerd(path string) (string, error) {
	if path == "" {
		path = "containerd"
	}
	p, err := exec.LookPath(path)
	if err != nil {
		return "", fmt.Errorf("%w: %q is not an executable in PATH; install it with `apt-get install containerd runc` or pass --containerd=/path/to/containerd", ErrNoContainerd, path)
	}
	return p, nil
}

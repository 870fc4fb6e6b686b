package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/strata-dev/strata/pkg/fileutil"
)

// containerdConfig is containerd 2's configuration (version 4). Every
// path and socket is Strata's own, so a system containerd on the same
// machine is untouched; drop-ins come from Strata's own conf.d (where the
// Helm chart's wasm installer writes, as on any containerd 2 node), not
// from /etc/containerd.
var containerdConfig = template.Must(template.New("containerd").Parse(`version = 4
root = "{{.Root}}"
state = "{{.State}}"
imports = [{{if .ConfDir}}"{{.ConfDir}}/*.toml"{{end}}]
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs", "io.containerd.differ.v1.erofs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[plugins.'io.containerd.server.v1.grpc']
  address = "{{.Socket}}"
[plugins.'io.containerd.server.v1.ttrpc']
  address = "{{.Socket}}.ttrpc"
[plugins.'io.containerd.shim.v1.manager']
  socket_dir = "{{.State}}/s"
[plugins.'io.containerd.internal.v1.opt']
  path = "{{.Root}}/opt"

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{{.SandboxImage}}"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "{{.RegistryHostsDir}}"

[plugins.'io.containerd.cri.v1.runtime']
  # The machine may lack CAP_SYS_RESOURCE; without this every sandbox fails
  # to write /proc/self/oom_score_adj.
  restrict_oom_score_adj = true
  # The DRA driver's CDI specs reach containers through containerd itself.
  enable_cdi = true
  cdi_spec_dirs = [{{range $i, $d := .CDISpecDirs}}{{if $i}}, {{end}}"{{$d}}"{{end}}]
  # Checkpoints (the kubelet's checkpoint API) need criu; restoring one
  # is creating a container whose image is the checkpoint.
  enable_criu = true
  enable_experimental_restore_via_create = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        SystemdCgroup = false
{{- range .ExtraRuntimes}}
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.{{.Name}}]
      runtime_type = "{{.Type}}"
{{- if .PodAnnotations}}
      pod_annotations = [{{range $i, $a := .PodAnnotations}}{{if $i}}, {{end}}"{{$a}}"{{end}}]
{{- end}}
{{- if .ContainerAnnotations}}
      container_annotations = [{{range $i, $a := .ContainerAnnotations}}{{if $i}}, {{end}}"{{$a}}"{{end}}]
{{- end}}
{{- end}}
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{{.CNIBinDir}}"]
    conf_dir = "{{.CNIConfDir}}"

# NRI lets node plugins (resource policies, device injectors) adjust
# containers as they are created; none is installed yet.
[plugins.'io.containerd.nri.v1.nri']
  disable = false
  socket_path = "{{.NRI.Socket}}"
  plugin_path = "{{.NRI.PluginDir}}"
  plugin_config_path = "{{.NRI.ConfigDir}}"
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

// NRI are the paths of containerd's NRI plugin: the socket external
// plugins connect to, and the directories of pre-installed plugins and
// their configuration.
type NRI struct {
	Socket, PluginDir, ConfigDir string
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
	// ConfDir holds drop-in configuration files (*.toml) containerd
	// imports over this configuration.
	ConfDir string
	// CDISpecDirs are where containerd finds CDI specs (the DRA driver's).
	CDISpecDirs []string
	// NRI are the paths of containerd's Node Resource Interface.
	NRI NRI
	// Env is added to containerd's environment, which its shims inherit.
	Env []string
	// ShimDirs hold the extra runtimes' shim binaries; containerd finds a
	// runtime's shim on its PATH.
	ShimDirs []string
	LogFile  string

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
	for _, d := range []string{c.Root, c.State, filepath.Dir(c.Socket), filepath.Dir(c.LogFile), c.ConfDir} {
		if d == "" {
			continue
		}
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
	// Shims are found on PATH: the extra runtimes' shim directories first
	// (so the shim they name wins), then containerd's own (its runc shim).
	path := append(slices.Clone(c.ShimDirs), filepath.Dir(c.Binary))
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Env = append(cmd.Env, "PATH="+strings.Join(append(path, os.Getenv("PATH")), string(os.PathListSeparator)))
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
		if c.criServing(ctx) {
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
			return fmt.Errorf("containerd's CRI on %s not ready after %s; see %s", c.Socket, timeout, c.LogFile)
		}
	}
}

// criServing reports whether the CRI service answers. The socket accepts
// before CRI has loaded its state (longer after a crash, when it recovers
// the previous run's sandboxes), and a kubelet started then fails with
// "server is not initialized yet".
func (c *Containerd) criServing(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+c.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false
	}
	defer conn.Close()
	_, err = runtimeapi.NewRuntimeServiceClient(conn).Version(ctx, &runtimeapi.VersionRequest{})
	return err == nil
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

// ErrNoContainerd names the missing binary and how to get it.
var ErrNoContainerd = errors.New("containerd not found")

// FindContainerd resolves the containerd binary: path if given, else
// builtin (the containerd that `make build` puts next to strata). It must
// be containerd 2, with its runc shim beside it.
func FindContainerd(path, builtin string) (string, error) {
	how := "build it with `make build` (it is built from source into bin/ next to strata) or pass --containerd=/path/to/containerd"
	if path == "" {
		path = builtin
	}
	if path == "" {
		return "", fmt.Errorf("%w: no containerd next to strata; %s", ErrNoContainerd, how)
	}
	p, err := exec.LookPath(path)
	if err != nil {
		return "", fmt.Errorf("%w: %q is not an executable; %s", ErrNoContainerd, path, how)
	}
	out, err := exec.Command(p, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("containerd %s --version: %w", p, err)
	}
	v, err := ParseContainerdVersion(string(out))
	if err != nil {
		return "", fmt.Errorf("containerd %s: %w", p, err)
	}
	if !strings.HasPrefix(v, "2.") {
		return "", fmt.Errorf("containerd %s is version %s; Strata needs containerd 2.x (CDI, the CRI event stream, checkpoints); %s", p, v, how)
	}
	shim := filepath.Join(filepath.Dir(p), runcShim)
	if _, err := os.Stat(shim); err != nil {
		return "", fmt.Errorf("containerd %s: its runc shim %s is missing; %s", p, shim, how)
	}
	return p, nil
}

// runcShim is the shim of runtime type io.containerd.runc.v2; containerd
// finds it on its PATH, which starts with containerd's own directory.
const runcShim = "containerd-shim-runc-v2"

// ParseContainerdVersion reads the version out of `containerd --version`
// ("containerd github.com/containerd/containerd/v2 v2.3.7 <revision>").
func ParseContainerdVersion(out string) (string, error) {
	f := strings.Fields(out)
	if len(f) < 3 || f[0] != "containerd" {
		return "", fmt.Errorf("cannot read a version from %q", strings.TrimSpace(out))
	}
	return strings.TrimPrefix(f[2], "v"), nil
}

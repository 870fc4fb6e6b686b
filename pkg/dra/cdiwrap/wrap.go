package cdiwrap

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/strata-dev/strata/pkg/fileutil"
	"tags.cncf.io/container-device-interface/pkg/cdi"
)

// CRI annotations that containerd (1.6 and later) puts into the OCI spec of
// every container it creates for the kubelet.
const (
	AnnotationContainerType    = "io.kubernetes.cri.container-type"
	AnnotationSandboxUID       = "io.kubernetes.cri.sandbox-uid"
	AnnotationSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	AnnotationSandboxName      = "io.kubernetes.cri.sandbox-name"
	AnnotationContainerName    = "io.kubernetes.cri.container-name"
	// ContainerTypeContainer marks an application container (the pod
	// sandbox is "sandbox").
	ContainerTypeContainer = "container"
)

// ListEnv are the variables that hold one entry per GPU. When a container
// gets several CDI devices, their values are joined with commas instead of
// the last device's value winning (CDI's rule for plain variables).
var ListEnv = []string{"NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "STRATA_GPU_DEVICES", "STRATA_GPU_UUIDS"}

// Config configures the wrapper.
type Config struct {
	// Runc is the real runc binary (default: /usr/sbin/runc, else "runc"
	// from PATH).
	Runc string
	// CDIDirs are the CDI spec directories (default /etc/cdi, /var/run/cdi).
	CDIDirs []string
	// PodDir holds the driver's PodDevices files. Required.
	PodDir string
}

// containerDir keeps the environment each wrapped container got, for exec.
func (c Config) containerDir() string { return filepath.Join(c.PodDir, "containers") }

// runcArgs is what the wrapper needs from a runc command line.
type runcArgs struct {
	command string
	bundle  string // create, run
	process string // exec
	id      string
}

// Global runc flags that take a value.
var globalValueFlags = []string{"root", "log", "log-format", "criu", "rootless"}

// Flags of create, run and exec that take a value.
var commandValueFlags = []string{"bundle", "b", "console-socket", "pid-file", "preserve-fds",
	"process", "p", "cwd", "env", "e", "user", "u", "cap", "c", "apparmor", "process-label", "cgroup", "additional-gids", "g"}

func flagName(arg string) (name string, hasValue bool) {
	name = strings.TrimLeft(arg, "-")
	name, _, hasValue = strings.Cut(name, "=")
	return name, hasValue
}

func parseRuncArgs(args []string) runcArgs {
	var r runcArgs
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			break
		}
		if name, inline := flagName(a); !inline && slices.Contains(globalValueFlags, name) {
			i++
		}
	}
	if i < len(args) && args[i] == "--" {
		i++
	}
	if i >= len(args) {
		return r
	}
	r.command = args[i]
	var positional []string
	for i++; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		name, inline := flagName(a)
		if !slices.Contains(commandValueFlags, name) {
			continue
		}
		value := ""
		if inline {
			_, value, _ = strings.Cut(a, "=")
		} else if i+1 < len(args) {
			i++
			value = args[i]
		}
		switch name {
		case "bundle", "b":
			r.bundle = value
		case "process", "p":
			r.process = value
		}
	}
	if len(positional) > 0 {
		r.id = positional[0]
	}
	return r
}

// Main is the wrapper's entry point: args are the wrapper's own flags
// (--runc, --cdi-dir (repeatable), --pod-dir), then "--", then runc's
// arguments as the shim passed them. It applies the CDI devices when needed
// and replaces the process with the real runc; it returns only on error.
func Main(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("runc-wrapper", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	fs.StringVar(&cfg.Runc, "runc", "", "the real runc binary")
	fs.Func("cdi-dir", "CDI spec directory (repeatable; default /etc/cdi and /var/run/cdi)", func(s string) error {
		cfg.CDIDirs = append(cfg.CDIDirs, s)
		return nil
	})
	fs.StringVar(&cfg.PodDir, "pod-dir", "", "directory of the DRA driver's per-pod device files")
	sep := slices.Index(args, "--")
	if sep < 0 {
		fmt.Fprintln(stderr, "runc-wrapper: usage: runc-wrapper --pod-dir DIR [--runc PATH] [--cdi-dir DIR]... -- RUNC-ARGS...")
		return 2
	}
	if err := fs.Parse(args[:sep]); err != nil {
		return 2
	}
	runcArgv := args[sep+1:]
	if err := Prepare(cfg, runcArgv); err != nil {
		reportError(runcArgv, err, stderr)
		return 1
	}
	runc, err := cfg.runcPath()
	if err != nil {
		reportError(runcArgv, err, stderr)
		return 1
	}
	err = syscall.Exec(runc, append([]string{"runc"}, runcArgv...), os.Environ())
	reportError(runcArgv, fmt.Errorf("exec %s: %w", runc, err), stderr)
	return 1
}

func (c Config) runcPath() (string, error) {
	if c.Runc != "" {
		return c.Runc, nil
	}
	if _, err := os.Stat("/usr/sbin/runc"); err == nil {
		return "/usr/sbin/runc", nil
	}
	return exec.LookPath("runc")
}

// reportError writes the error to stderr and, like runc, to its --log file
// in runc's JSON format, where containerd looks for the reason of a failure.
func reportError(runcArgv []string, err error, stderr io.Writer) {
	msg := "strata runc wrapper: " + err.Error()
	fmt.Fprintln(stderr, msg)
	var logFile, logFormat string
	for i := 0; i < len(runcArgv); i++ {
		name, inline := flagName(runcArgv[i])
		if !strings.HasPrefix(runcArgv[i], "-") || !slices.Contains(globalValueFlags, name) {
			if !strings.HasPrefix(runcArgv[i], "-") {
				break
			}
			continue
		}
		value := ""
		if inline {
			_, value, _ = strings.Cut(runcArgv[i], "=")
		} else if i+1 < len(runcArgv) {
			i++
			value = runcArgv[i]
		}
		switch name {
		case "log":
			logFile = value
		case "log-format":
			logFormat = value
		}
	}
	if logFile == "" {
		return
	}
	line := msg + "\n"
	if logFormat == "json" {
		b, _ := json.Marshal(map[string]string{"level": "error", "msg": msg, "time": time.Now().UTC().Format(time.RFC3339Nano)})
		line = string(b) + "\n"
	}
	if f, ferr := os.OpenFile(logFile, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644); ferr == nil {
		_, _ = f.WriteString(line)
		_ = f.Close()
	}
}

// Prepare does the wrapper's work for one runc command line before runc
// runs: CDI injection on create/run, the granted environment on exec, and
// cleanup on delete.
func Prepare(cfg Config, runcArgv []string) error {
	if cfg.PodDir == "" {
		return errors.New("no --pod-dir given")
	}
	r := parseRuncArgs(runcArgv)
	switch r.command {
	case "create", "run":
		bundle := r.bundle
		if bundle == "" {
			bundle = "."
		}
		_, err := InjectBundle(cfg, bundle, r.id)
		return err
	case "exec":
		if r.process == "" || !validID(r.id) {
			return nil
		}
		return execEnv(cfg, r.id, r.process)
	case "delete":
		if validID(r.id) {
			if err := os.Remove(filepath.Join(cfg.containerDir(), r.id+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

func validID(id string) bool {
	return id != "" && !strings.ContainsAny(id, `/\`) && !strings.HasPrefix(id, ".")
}

// InjectBundle applies the CDI devices recorded for the bundle's container
// to its config.json and returns their IDs; a container without devices is
// left alone. id is the runc container ID, used to remember the injected
// environment for later exec calls (may be empty).
func InjectBundle(cfg Config, bundle, id string) ([]string, error) {
	file := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	ann := spec.Annotations
	if ann[AnnotationContainerType] != ContainerTypeContainer || ann[AnnotationContainerName] == "" {
		return nil, nil
	}
	pod, err := findPod(cfg.PodDir, ann[AnnotationSandboxUID], ann[AnnotationSandboxNamespace], ann[AnnotationSandboxName])
	if err != nil {
		return nil, fmt.Errorf("GPU devices of pod %s/%s: %w", ann[AnnotationSandboxNamespace], ann[AnnotationSandboxName], err)
	}
	devices := pod.DevicesFor(ann[AnnotationContainerName])
	if len(devices) == 0 {
		return nil, nil
	}
	env, err := Inject(cfg.CDIDirs, &spec, devices)
	if err != nil {
		return nil, fmt.Errorf("container %q of pod %s/%s: %w", ann[AnnotationContainerName], pod.Namespace, pod.Name, err)
	}
	out, err := json.Marshal(&spec)
	if err != nil {
		return nil, err
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(file); err == nil {
		mode = st.Mode().Perm()
	}
	if err := fileutil.WriteAtomic(file, out, mode); err != nil {
		return nil, err
	}
	if validID(id) && len(env) > 0 {
		b, _ := json.Marshal(env)
		if err := fileutil.WriteAtomic(filepath.Join(cfg.containerDir(), id+".json"), b, 0o644); err != nil {
			return nil, err
		}
	}
	return devices, nil
}

// Inject applies CDI devices to an OCI spec with the CDI library and joins
// the per-GPU list variables (ListEnv) of several devices. It returns the
// environment entries that the devices set.
func Inject(cdiDirs []string, spec *specs.Spec, devices []string) ([]string, error) {
	if len(cdiDirs) == 0 {
		cdiDirs = cdi.DefaultSpecDirs
	}
	cache, _ := cdi.NewCache(cdi.WithSpecDirs(cdiDirs...), cdi.WithAutoRefresh(false))
	lists := map[string][]string{}
	var keys []string
	for _, id := range devices {
		d := cache.GetDevice(id)
		if d == nil {
			continue // InjectDevices reports it
		}
		edits := append(append([]string(nil), d.GetSpec().ContainerEdits.Env...), d.ContainerEdits.Env...)
		for _, kv := range edits {
			k, v, _ := strings.Cut(kv, "=")
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
			if slices.Contains(ListEnv, k) {
				for _, item := range strings.Split(v, ",") {
					if item != "" && !slices.Contains(lists[k], item) {
						lists[k] = append(lists[k], item)
					}
				}
			}
		}
	}
	if unresolved, err := cache.InjectDevices(spec, devices...); err != nil {
		if len(unresolved) > 0 {
			return nil, fmt.Errorf("CDI devices %s not found in %s (was the claim unprepared?): %w", strings.Join(unresolved, ", "), strings.Join(cdiDirs, ", "), err)
		}
		return nil, err
	}
	if spec.Process == nil {
		return nil, nil
	}
	for k, items := range lists {
		setEnv(&spec.Process.Env, k, strings.Join(items, ","))
	}
	var env []string
	for _, kv := range spec.Process.Env {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(keys, k) {
			env = append(env, kv)
		}
	}
	return env, nil
}

func setEnv(env *[]string, key, value string) {
	for i, kv := range *env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			(*env)[i] = key + "=" + value
			return
		}
	}
	*env = append(*env, key+"="+value)
}

// execEnv gives a process started with `runc exec` the environment that
// create injected: containerd builds exec processes from the container's
// original spec, which never saw the CDI edits.
func execEnv(cfg Config, id, processFile string) error {
	data, err := os.ReadFile(filepath.Join(cfg.containerDir(), id+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var env []string
	if err := json.Unmarshal(data, &env); err != nil {
		return fmt.Errorf("environment of container %s: %w", id, err)
	}
	pdata, err := os.ReadFile(processFile)
	if err != nil {
		return err
	}
	var process specs.Process
	if err := json.Unmarshal(pdata, &process); err != nil {
		return fmt.Errorf("%s: %w", processFile, err)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		setEnv(&process.Env, k, v)
	}
	out, err := json.Marshal(&process)
	if err != nil {
		return err
	}
	return fileutil.WriteAtomic(processFile, out, 0o644)
}

package cdiwrap

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseRuncArgs(t *testing.T) {
	tests := []struct {
		args []string
		want runcArgs
	}{
		// As containerd-shim-runc-v2 (go-runc) calls runc.
		{[]string{"--root", "/run/containerd/runc/k8s.io", "--log", "/run/x/log.json", "--log-format", "json", "--systemd-cgroup",
			"create", "--bundle", "/run/b/abc", "--pid-file", "/run/b/abc/init.pid", "abc"},
			runcArgs{command: "create", bundle: "/run/b/abc", id: "abc"}},
		{[]string{"--root=/r", "create", "-b=/b", "--console-socket", "/s", "--no-pivot", "id1"}, runcArgs{command: "create", bundle: "/b", id: "id1"}},
		{[]string{"exec", "--process", "/tmp/p.json", "--detach", "--pid-file", "/p", "abc"}, runcArgs{command: "exec", process: "/tmp/p.json", id: "abc"}},
		{[]string{"--root", "/r", "delete", "--force", "abc"}, runcArgs{command: "delete", id: "abc"}},
		{[]string{"--root", "/r", "state", "abc"}, runcArgs{command: "state", id: "abc"}},
		{[]string{"--version"}, runcArgs{}},
		{nil, runcArgs{}},
	}
	for _, tt := range tests {
		if got := parseRuncArgs(tt.args); got != tt.want {
			t.Errorf("%q: got %+v, want %+v", tt.args, got, tt.want)
		}
	}
}

const cdiSpecA = `{"cdiVersion":"0.5.0","kind":"gpu.strata.dev/gpu","devices":[
 {"name":"claimA-gpu","containerEdits":{"env":["NVIDIA_VISIBLE_DEVICES=GPU-a","CUDA_VISIBLE_DEVICES=GPU-a","STRATA_GPU_DEVICES=gpu-0","STRATA_GPU_COMPUTE_MILLI=250","CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=25"]}}]}`

const cdiSpecB = `{"cdiVersion":"0.5.0","kind":"gpu.strata.dev/gpu","devices":[
 {"name":"claimB-gpu","containerEdits":{"env":["NVIDIA_VISIBLE_DEVICES=GPU-b","CUDA_VISIBLE_DEVICES=GPU-b","STRATA_GPU_DEVICES=gpu-1","STRATA_GPU_COMPUTE_MILLI=1000"]}}]}`

type fixture struct {
	cfg    Config
	bundle string
}

// newFixture makes a CDI dir with two claims' specs, a pod file that gives
// container "main" both devices and "helper" one, and a bundle whose
// config.json is what containerd 1.6 writes for a pod's container.
func newFixture(t *testing.T, annotations map[string]string) fixture {
	t.Helper()
	dir := t.TempDir()
	f := fixture{
		cfg:    Config{CDIDirs: []string{filepath.Join(dir, "cdi")}, PodDir: filepath.Join(dir, "pods")},
		bundle: filepath.Join(dir, "bundle"),
	}
	for name, spec := range map[string]string{"gpu.strata.dev-gpu_claimA.json": cdiSpecA, "gpu.strata.dev-gpu_claimB.json": cdiSpecB} {
		writeFile(t, filepath.Join(f.cfg.CDIDirs[0], name), spec)
	}
	err := WritePod(f.cfg.PodDir, &PodDevices{PodUID: "uid-1", Namespace: "ml", Name: "trainer", Claims: map[string]map[string][]string{
		"claimB": {"main": {"gpu.strata.dev/gpu=claimB-gpu"}},
		"claimA": {"main": {"gpu.strata.dev/gpu=claimA-gpu"}, "helper": {"gpu.strata.dev/gpu=claimA-gpu"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	spec := specs.Spec{
		Version:     "1.0.2-dev",
		Process:     &specs.Process{Args: []string{"/app"}, Env: []string{"PATH=/usr/bin", "NVIDIA_VISIBLE_DEVICES=void"}, Cwd: "/"},
		Root:        &specs.Root{Path: "rootfs"},
		Linux:       &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: "pid"}}},
		Annotations: annotations,
	}
	data, _ := json.Marshal(spec)
	writeFile(t, filepath.Join(f.bundle, "config.json"), string(data))
	return f
}

func writeFile(t *testing.T, file, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f fixture) env(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(f.bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range spec.Process.Env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func criAnnotations(container string) map[string]string {
	return map[string]string{
		AnnotationContainerType:        ContainerTypeContainer,
		AnnotationSandboxUID:           "uid-1",
		AnnotationSandboxNamespace:     "ml",
		AnnotationSandboxName:          "trainer",
		AnnotationContainerName:        container,
		"io.kubernetes.cri.sandbox-id": "0123",
	}
}

func TestInjectBundle(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		wantDevices int
		wantEnv     map[string]string
	}{
		{name: "two claims", annotations: criAnnotations("main"), wantDevices: 2, wantEnv: map[string]string{
			// List variables join; the others come from the last device.
			"NVIDIA_VISIBLE_DEVICES": "GPU-a,GPU-b", "CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b", "STRATA_GPU_DEVICES": "gpu-0,gpu-1",
			"STRATA_GPU_COMPUTE_MILLI": "1000", "PATH": "/usr/bin"}},
		{name: "one share", annotations: criAnnotations("helper"), wantDevices: 1, wantEnv: map[string]string{
			"NVIDIA_VISIBLE_DEVICES": "GPU-a", "STRATA_GPU_COMPUTE_MILLI": "250", "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "25"}},
		{name: "found by name without a UID", annotations: func() map[string]string {
			a := criAnnotations("helper")
			delete(a, AnnotationSandboxUID)
			return a
		}(), wantDevices: 1, wantEnv: map[string]string{"NVIDIA_VISIBLE_DEVICES": "GPU-a"}},
		{name: "container without claims", annotations: criAnnotations("sidecar"), wantEnv: map[string]string{"NVIDIA_VISIBLE_DEVICES": "void"}},
		{name: "other pod", annotations: func() map[string]string {
			a := criAnnotations("main")
			a[AnnotationSandboxUID] = "uid-2"
			return a
		}(), wantEnv: map[string]string{"NVIDIA_VISIBLE_DEVICES": "void"}},
		{name: "pod sandbox", annotations: map[string]string{AnnotationContainerType: "sandbox", AnnotationSandboxUID: "uid-1"},
			wantEnv: map[string]string{"NVIDIA_VISIBLE_DEVICES": "void"}},
		{name: "not a CRI container", wantEnv: map[string]string{"NVIDIA_VISIBLE_DEVICES": "void"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.annotations)
			before, _ := os.ReadFile(filepath.Join(f.bundle, "config.json"))
			devices, err := InjectBundle(f.cfg, f.bundle, "ctr1")
			if err != nil {
				t.Fatal(err)
			}
			if len(devices) != tt.wantDevices {
				t.Fatalf("devices %v, want %d", devices, tt.wantDevices)
			}
			env := f.env(t)
			for k, v := range tt.wantEnv {
				if env[k] != v {
					t.Errorf("%s=%q, want %q", k, env[k], v)
				}
			}
			after, _ := os.ReadFile(filepath.Join(f.bundle, "config.json"))
			if tt.wantDevices == 0 && !bytes.Equal(before, after) {
				t.Error("config.json of a container without devices was rewritten")
			}
		})
	}
}

func TestInjectMissingSpecFails(t *testing.T) {
	f := newFixture(t, criAnnotations("main"))
	if err := os.Remove(filepath.Join(f.cfg.CDIDirs[0], "gpu.strata.dev-gpu_claimB.json")); err != nil {
		t.Fatal(err)
	}
	_, err := InjectBundle(f.cfg, f.bundle, "ctr1")
	if err == nil || !strings.Contains(err.Error(), "gpu.strata.dev/gpu=claimB-gpu") || !strings.Contains(err.Error(), `container "main" of pod ml/trainer`) {
		t.Fatalf("error %v", err)
	}
}

// TestPrepareLifecycle drives Prepare as the shim's runc calls would: create
// injects, exec gets the same environment, delete forgets it.
func TestPrepareLifecycle(t *testing.T) {
	f := newFixture(t, criAnnotations("helper"))
	global := []string{"--root", "/run/containerd/runc/k8s.io", "--log", filepath.Join(f.bundle, "log.json"), "--log-format", "json"}
	if err := Prepare(f.cfg, slices.Concat(global, []string{"create", "--bundle", f.bundle, "--pid-file", "x", "ctr1"})); err != nil {
		t.Fatal(err)
	}
	if f.env(t)["STRATA_GPU_COMPUTE_MILLI"] != "250" {
		t.Fatalf("create did not inject: %v", f.env(t))
	}
	process := filepath.Join(t.TempDir(), "process.json")
	data, _ := json.Marshal(specs.Process{Args: []string{"env"}, Env: []string{"PATH=/usr/bin", "NVIDIA_VISIBLE_DEVICES=void"}, Cwd: "/"})
	writeFile(t, process, string(data))
	if err := Prepare(f.cfg, slices.Concat(global, []string{"exec", "--process", process, "--detach", "ctr1"})); err != nil {
		t.Fatal(err)
	}
	var p specs.Process
	data, _ = os.ReadFile(process)
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p.Env, "STRATA_GPU_COMPUTE_MILLI=250") || !slices.Contains(p.Env, "NVIDIA_VISIBLE_DEVICES=GPU-a") || !slices.Contains(p.Env, "PATH=/usr/bin") {
		t.Fatalf("exec env %v", p.Env)
	}
	if err := Prepare(f.cfg, slices.Concat(global, []string{"delete", "--force", "ctr1"})); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.cfg.containerDir(), "ctr1.json")); !os.IsNotExist(err) {
		t.Fatalf("container env left after delete: %v", err)
	}
	// Other commands pass through untouched.
	if err := Prepare(f.cfg, slices.Concat(global, []string{"state", "ctr1"})); err != nil {
		t.Fatal(err)
	}
}

func TestMainReportsErrors(t *testing.T) {
	f := newFixture(t, criAnnotations("main"))
	if err := os.RemoveAll(f.cfg.CDIDirs[0]); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(t.TempDir(), "log.json")
	var stderr bytes.Buffer
	args := []string{"--pod-dir", f.cfg.PodDir, "--cdi-dir", f.cfg.CDIDirs[0], "--runc", "/bin/false", "--",
		"--log", logFile, "--log-format", "json", "create", "--bundle", f.bundle, "ctr1"}
	if rc := Main(args, &stderr); rc != 1 {
		t.Fatalf("rc %d", rc)
	}
	if !strings.Contains(stderr.String(), "unresolvable CDI devices") {
		t.Errorf("stderr %q", stderr.String())
	}
	data, _ := os.ReadFile(logFile)
	var entry map[string]string
	if err := json.Unmarshal(bytes.TrimSpace(data), &entry); err != nil || entry["level"] != "error" || !strings.Contains(entry["msg"], "strata runc wrapper") {
		t.Errorf("runc log %q: %v", data, err)
	}
	if rc := Main([]string{"create"}, &stderr); rc != 2 {
		t.Errorf("usage error rc %d", rc)
	}
}

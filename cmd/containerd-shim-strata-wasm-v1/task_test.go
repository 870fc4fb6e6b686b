package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/strata-dev/strata/pkg/wasm"
)

func TestPreopens(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "hosts")
	os.WriteFile(file, nil, 0o644)
	spec := &specs.Spec{Mounts: []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev/shm", Type: "bind", Source: dir, Options: []string{"rbind"}},
		{Destination: "/data", Type: "bind", Source: dir, Options: []string{"rbind", "rw"}},
		{Destination: "/config/", Source: dir, Options: []string{"rbind", "ro"}},
		{Destination: "/etc/hosts", Type: "bind", Source: file, Options: []string{"rbind"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"},
		{Destination: "/missing", Type: "bind", Source: filepath.Join(dir, "nope")},
	}}
	want := []wasm.Mount{{HostPath: dir, GuestPath: "/data"}, {HostPath: dir, GuestPath: "/config", ReadOnly: true}}
	if got := preopens(spec); !reflect.DeepEqual(got, want) {
		t.Errorf("preopens = %+v, want %+v", got, want)
	}
}

func TestSettings(t *testing.T) {
	for _, tc := range []struct {
		in      string
		def     time.Duration
		want    time.Duration
		wantErr bool
	}{
		{"", 10 * time.Second, 10 * time.Second, false},
		{"3", 0, 3 * time.Second, false},
		{"250ms", 0, 250 * time.Millisecond, false},
		{"soon", 0, 0, true},
	} {
		got, err := duration(tc.in, tc.def)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("duration(%q) = %v, %v; want %v (err %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	env := []string{"A=1", "PORT=80", "A=2", "EMPTY="}
	for k, want := range map[string]string{"A": "2", "PORT": "80", "EMPTY": "", "NONE": ""} {
		if got := lookup(env, k); got != want {
			t.Errorf("lookup(%s) = %q, want %q", k, got, want)
		}
	}
}

func TestTerminationLogAndGroup(t *testing.T) {
	spec := &specs.Spec{
		Annotations: map[string]string{annSandboxID: "pod1"},
		Mounts: []specs.Mount{
			{Destination: "/dev/termination-log", Source: "/var/lib/kubelet/pods/x/containers/c/1"},
			{Destination: "/custom-log", Source: "/host/custom"},
		},
	}
	if got := terminationLogPath(spec); got != "/var/lib/kubelet/pods/x/containers/c/1" {
		t.Errorf("default termination log = %q", got)
	}
	spec.Annotations[annTerminationPath] = "/custom-log"
	if got := terminationLogPath(spec); got != "/host/custom" {
		t.Errorf("annotated termination log = %q", got)
	}
	f := flags{id: "c1", namespace: "k8s.io", address: "/run/c.sock"}
	if got := group(f, spec); got != "pod1" {
		t.Errorf("group = %q, want the sandbox id", got)
	}
	if got := group(f, &specs.Spec{}); got != "c1" {
		t.Errorf("group without sandbox = %q, want the task id", got)
	}
	t.Setenv(scopeEnv, "node")
	if got := group(f, spec); got != "node" {
		t.Errorf("group in node scope = %q", got)
	}
	a, b := socketPath(f, "pod1"), socketPath(flags{id: "c1", namespace: "k8s.io", address: "/run/other.sock"}, "pod1")
	if a == b {
		t.Errorf("two containerds share socket %s", a)
	}
}

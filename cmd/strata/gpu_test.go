package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGPUList(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    []string
		wantErr string
	}{
		{name: "table", args: []string{"--simulated-gpus", "2xA100-80GB"},
			want: []string{"DEVICE  MODEL", "gpu-1   A100-80GB  80Gi", "simulated"}},
		{name: "yaml is the published devices", args: []string{"--simulated-gpus", "1xT4-16GB", "-o", "yaml"},
			want: []string{"driver: gpu.strata.dev", "  name: gpu-0", "model:\n      string: T4-16GB", "memory:", "value: 16Gi", "allowMultipleAllocations: true"}},
		{name: "unknown output", args: []string{"--simulated-gpus", "1xT4-16GB", "-o", "json"}, wantErr: `unknown --output "json": use table or yaml`},
		{name: "bad inventory", args: []string{"--gpu-backend", "simulated", "--simulated-gpus", "x"}, wantErr: `bad simulated GPU entry "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := newGPUCommand()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs(append([]string{"list"}, tt.args...))
			err := cmd.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestGPUDriverBadInput(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"+
		"users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NODE_NAME", "")
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	tests := []struct {
		args    []string
		wantErr string
	}{
		{nil, "--node-name is empty: pass it, or set NODE_NAME"},
		{[]string{"--node-name", "n1"}, "no cluster to talk to: run in a pod, or pass --kubeconfig"},
		{[]string{"--node-name", "n1", "--kubeconfig", "/nonexistent"}, "kubeconfig /nonexistent"},
		{[]string{"--node-name", "n1", "--kubeconfig", kubeconfig, "--state-dir", t.TempDir(), "--gpu-backend", "simulated", "--simulated-gpus", "x"}, `bad simulated GPU entry "x"`},
	}
	for _, tt := range tests {
		cmd := newGPUCommand()
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		cmd.SetArgs(append([]string{"driver"}, tt.args...))
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("gpu driver %v: %v, want %q", tt.args, err, tt.wantErr)
		}
	}
}

package main

import (
	"bytes"
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

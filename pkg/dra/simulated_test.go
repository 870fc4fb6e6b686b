package dra

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSimulated(t *testing.T) {
	tests := []struct {
		spec    string
		models  []string // per GPU
		memGiB  int64    // of the first GPU
		wantErr string   // substring; the bad token must be named
	}{
		{spec: "4xA100-80GB", models: []string{"A100-80GB", "A100-80GB", "A100-80GB", "A100-80GB"}, memGiB: 80},
		{spec: "2xA100-80GB,1xT4-16GB", models: []string{"A100-80GB", "A100-80GB", "T4-16GB"}, memGiB: 80},
		{spec: " 1xH100-SXM-80gb ,\n# comment\n1xL4-24GB # trailing comment\n", models: []string{"H100-SXM-80GB", "L4-24GB"}, memGiB: 80},
		{spec: "", wantErr: "lists no GPUs"},
		{spec: "A100-80GB", wantErr: `"A100-80GB": no "x"`},
		{spec: "0xA100-80GB", wantErr: `"0xA100-80GB": count "0"`},
		{spec: "twoxA100-80GB", wantErr: `"twoxA100-80GB": count "two"`},
		{spec: "2xA100", wantErr: `"2xA100": no "-<memory>GB"`},
		{spec: "2xA100-80", wantErr: `"2xA100-80": memory "80" does not end in GB`},
		{spec: "2xA100-GB", wantErr: `memory "GB" is not a positive whole number`},
		{spec: "2x-80GB", wantErr: "empty model name"},
		{spec: "2xA 100-80GB", wantErr: `model "A 100"`},
		{spec: "1xT4-16GB,3xA100-80TB", wantErr: `"3xA100-80TB"`},
		{spec: "100xA100-80GB,29xT4-16GB", wantErr: "above 128"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			gpus, err := ParseSimulated(tt.spec, "n1")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "<count>x<model>-<memory>GB") && !strings.Contains(err.Error(), "128") {
					t.Errorf("error %q does not show the expected form", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(gpus) != len(tt.models) {
				t.Fatalf("%d GPUs, want %d", len(gpus), len(tt.models))
			}
			for i, g := range gpus {
				if g.Model != tt.models[i] || g.Index != i || g.Backend != BackendSimulated || g.Minor != -1 {
					t.Errorf("GPU %d: %+v", i, g)
				}
				if want := "GPU-sim-n1-" + string(rune('0'+i)); g.UUID != want {
					t.Errorf("GPU %d UUID %q, want %q", i, g.UUID, want)
				}
			}
			if gpus[0].MemoryBytes != tt.memGiB<<30 {
				t.Errorf("memory %d, want %d GiB", gpus[0].MemoryBytes, tt.memGiB)
			}
		})
	}
}

func TestInventoryBackends(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gpus")
	if err := os.WriteFile(file, []byte("# lab box\n2xT4-16GB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noNVML := func() ([]GPU, error) { return nil, ErrNVMLUnavailable }
	realGPU := func() ([]GPU, error) { return []GPU{{UUID: "GPU-1", Backend: BackendNVML}}, nil }
	tests := []struct {
		name    string
		opts    Options
		want    int
		backend string
		wantErr string
	}{
		{name: "simulated flag", opts: Options{Backend: BackendSimulated, Simulated: "4xA100-80GB"}, want: 4, backend: BackendSimulated},
		{name: "simulated file", opts: Options{Backend: BackendSimulated, SimulatedFile: file}, want: 2, backend: BackendSimulated},
		{name: "simulated without inventory", opts: Options{Backend: BackendSimulated}, wantErr: "no inventory"},
		{name: "both flag and file", opts: Options{Backend: BackendSimulated, Simulated: "1xT4-16GB", SimulatedFile: file}, wantErr: "not both"},
		{name: "missing file", opts: Options{Backend: BackendSimulated, SimulatedFile: file + ".none"}, wantErr: "no such file"},
		{name: "auto prefers NVML", opts: Options{Simulated: "4xA100-80GB", nvmlInventory: realGPU}, want: 1, backend: BackendNVML},
		{name: "auto falls back", opts: Options{Simulated: "4xA100-80GB", nvmlInventory: noNVML}, want: 4, backend: BackendSimulated},
		{name: "auto without anything", opts: Options{nvmlInventory: noNVML}, wantErr: "NVML not available"},
		{name: "nvml does not fall back", opts: Options{Backend: BackendNVML, Simulated: "4xA100-80GB", nvmlInventory: noNVML}, wantErr: "NVML not available"},
		{name: "nvml falls back when told", opts: Options{Backend: BackendNVML, FallbackToSimulated: true, Simulated: "1xA100-80GB", nvmlInventory: noNVML}, want: 1, backend: BackendSimulated},
		{name: "unknown backend", opts: Options{Backend: "rocm"}, wantErr: `unknown GPU backend "rocm"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gpus, err := Inventory(context.Background(), tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(gpus) != tt.want || gpus[0].Backend != tt.backend {
				t.Fatalf("got %d GPUs from %s, want %d from %s", len(gpus), gpus[0].Backend, tt.want, tt.backend)
			}
		})
	}
	if _, err := Inventory(context.Background(), Options{nvmlInventory: noNVML}); !errors.Is(err, ErrNVMLUnavailable) {
		t.Errorf("error %v does not wrap ErrNVMLUnavailable", err)
	}
}

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNVMLBackend runs the shipped binary's NVML backend against
// pkg/dra's stand-in libnvidia-ml.so.1 (two canned GPUs): the binary
// loads the library with dlopen and binds NVML's symbols lazily, as it
// does against a driver's library, so this is the whole path short of a
// real GPU (hack/device-check.sh runs the same command on one).
func TestNVMLBackend(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatalf("gcc is needed to build the stand-in NVML library: %v", err)
	}
	libDir := t.TempDir()
	src, err := filepath.Abs("../../pkg/dra/testdata/fakenvml/fakenvml.c")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-shared", "-fPIC", "-O2", "-o", filepath.Join(libDir, "libnvidia-ml.so.1"), src).CombinedOutput(); err != nil {
		t.Fatalf("build the stand-in NVML library: %v\n%s", err, out)
	}
	run := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(bin("strata"), append([]string{"gpu", "list"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	withLib := []string{"LD_LIBRARY_PATH=" + libDir}
	tests := []struct {
		name    string
		env     []string
		args    []string
		want    []string // substrings of the output
		wantErr bool
	}{
		{name: "nvml lists the library's GPUs", env: withLib, args: []string{"--gpu-backend", "nvml"}, want: []string{
			"gpu-0   H100-80GB-HBM3  81559Mi  GPU-fa4e0000-0000-4000-8000-000000000000  true   nvml",
			"gpu-1   Tesla-T4        15Gi     GPU-fa4e0001-0000-4000-8000-000000000001  false  nvml",
		}},
		{name: "auto prefers NVML over a simulated inventory", env: withLib,
			args: []string{"--simulated-gpus", "4xA100-80GB"}, want: []string{"H100-80GB-HBM3", "nvml"}},
		{name: "auto without the library falls back to the simulated inventory",
			args: []string{"--simulated-gpus", "1xA100-80GB"}, want: []string{"A100-80GB", "simulated"}},
		{name: "nvml without the library says it is missing", args: []string{"--gpu-backend", "nvml"}, wantErr: true,
			want: []string{"libnvidia-ml.so.1 could not be loaded"}},
		{name: "nvml with the driver not loaded names NVML's error", env: append(withLib, "FAKE_NVML_INIT=driver-not-loaded"),
			args: []string{"--gpu-backend", "nvml"}, wantErr: true, want: []string{"nvmlInit: Driver Not Loaded (9)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := append([]string{"LD_LIBRARY_PATH="}, tt.env...)
			out, err := run(env, tt.args...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v\n%s", err, tt.wantErr, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

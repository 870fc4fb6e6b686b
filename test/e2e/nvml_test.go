package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The stand-in NVML library's two GPUs (pkg/dra/testdata/fakenvml).
const (
	fakeH100UUID = "GPU-fa4e0000-0000-4000-8000-000000000000"
	fakeT4UUID   = "GPU-fa4e0001-0000-4000-8000-000000000001"
)

// fakeNVMLDir builds pkg/dra's stand-in libnvidia-ml.so.1 into a
// temporary directory, for LD_LIBRARY_PATH.
func fakeNVMLDir(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatalf("gcc is needed to build the stand-in NVML library: %v", err)
	}
	dir := t.TempDir()
	src, err := filepath.Abs("../../pkg/dra/testdata/fakenvml/fakenvml.c")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-shared", "-fPIC", "-O2", "-o", filepath.Join(dir, "libnvidia-ml.so.1"), src).CombinedOutput(); err != nil {
		t.Fatalf("build the stand-in NVML library: %v\n%s", err, out)
	}
	return dir
}

// TestNVMLBackend runs the shipped binary's NVML backend against the
// stand-in library: the binary loads it with dlopen and binds NVML's
// symbols lazily, as it does against a driver's library, so this is the
// whole path short of a real GPU (hack/device-check.sh runs the same
// command on one).
func TestNVMLBackend(t *testing.T) {
	withLib := []string{"LD_LIBRARY_PATH=" + fakeNVMLDir(t)}
	tests := []struct {
		name    string
		env     []string
		args    []string
		want    []string // substrings of the output
		wantErr bool
	}{
		{name: "nvml lists the library's GPUs", env: withLib, args: []string{"--gpu-backend", "nvml"}, want: []string{
			"gpu-0   H100-80GB-HBM3  81559Mi  " + fakeH100UUID + "  true   nvml",
			"gpu-1   Tesla-T4        15Gi     " + fakeT4UUID + "  false  nvml",
		}},
		{name: "auto prefers NVML over a simulated inventory", env: withLib,
			args: []string{"--simulated-gpus", "4xA100-80GB"}, want: []string{"H100-80GB-HBM3", "nvml"}},
		{name: "auto without the library falls back to the simulated inventory",
			args: []string{"--simulated-gpus", "1xA100-80GB"}, want: []string{"A100-80GB", "simulated"}},
		{name: "nvml without the library says it is missing and what to do", args: []string{"--gpu-backend", "nvml"}, wantErr: true,
			want: []string{"libnvidia-ml.so.1 could not be loaded", "--gpu-backend simulated"}},
		{name: "nvml with the driver not loaded names NVML's error", env: append(withLib, "FAKE_NVML_INIT=driver-not-loaded"),
			args: []string{"--gpu-backend", "nvml"}, wantErr: true, want: []string{"nvmlInit: Driver Not Loaded (9)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin("strata"), append([]string{"gpu", "list"}, tt.args...)...)
			// The last of duplicate variables wins: no inherited path.
			cmd.Env = append(append(os.Environ(), "LD_LIBRARY_PATH="), tt.env...)
			out, err := cmd.CombinedOutput()
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v\n%s", err, tt.wantErr, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestNVMLNode runs a server whose node finds its GPUs through NVML (the
// stand-in library): the DRA driver publishes them with NVML's UUIDs,
// models and memory, the scheduler allocates a share of one, and the pod
// sees that GPU's UUID. The stand-in has no /dev/nvidia* nodes, so the
// CDI devices carry none, as on a host whose device files are missing.
func TestNVMLNode(t *testing.T) {
	s := ownServer(t, "strata-e2e-nvml-", []string{"--gpu-backend", "nvml"}, []string{"LD_LIBRARY_PATH=" + fakeNVMLDir(t)})
	dir := s.dataDir
	var slice *resourcev1.ResourceSlice
	waitFor(t, 60*time.Second, "the node's gpu.strata.dev ResourceSlice", func(ctx context.Context) (bool, error) {
		l, err := s.client.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{FieldSelector: "spec.driver=gpu.strata.dev"})
		if err != nil || len(l.Items) == 0 {
			return false, nil
		}
		slice = &l.Items[0]
		return true, nil
	})
	want := []struct {
		name, model, uuid, memory string
		mig                       bool
	}{
		{"gpu-0", "H100-80GB-HBM3", fakeH100UUID, "81559Mi", true},
		{"gpu-1", "Tesla-T4", fakeT4UUID, "15Gi", false},
	}
	if len(slice.Spec.Devices) != len(want) {
		t.Fatalf("slice has %d devices, want %d: %+v", len(slice.Spec.Devices), len(want), slice.Spec.Devices)
	}
	for i, w := range want {
		d := slice.Spec.Devices[i]
		a := d.Attributes
		if d.Name != w.name || *a["model"].StringValue != w.model || *a["uuid"].StringValue != w.uuid ||
			*a["backend"].StringValue != "nvml" || *a["migCapable"].BoolValue != w.mig {
			t.Errorf("device %d: %s %v, want %+v from NVML", i, d.Name, a, w)
		}
		if got := d.Capacity["memory"].Value; got.Cmp(resource.MustParse(w.memory)) != 0 {
			t.Errorf("device %s memory %s, want %s", d.Name, got.String(), w.memory)
		}
	}

	// The image policy and a signed hello, as on the shared server.
	s.mustKubectl(t, "apply", "-f", "../../examples/image-policy.yaml")
	ref := "localhost:5000/hello:v1"
	pushUnsignedImage(t, "hello", ref, "--port", "8080", "--user", "65532")
	strata(t, "image", "sign", "--cluster-key", "--data-dir", dir, ref)
	// 70Gi fits only the H100: the allocator must pick gpu-0.
	s.gpuTemplate(t, "nvml-share", "250", "70Gi")
	s.gpuPod(t, "nvml-share-1", "nvml-share", "", "")
	env := s.podEnv(t, "nvml-share-1")
	if env["NVIDIA_VISIBLE_DEVICES"] != fakeH100UUID || env["CUDA_VISIBLE_DEVICES"] != fakeH100UUID ||
		env["STRATA_GPU_BACKEND"] != "nvml" || env["STRATA_GPU_MODEL"] != "H100-80GB-HBM3" || env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] != "25" {
		t.Fatalf("pod sees %v, want the H100's UUID, backend nvml and a 25%% share", env)
	}
	s.deleteGPUPods(t)
}

// TestDeviceCheckScript runs hack/device-check.sh, the check prepared for a
// machine with a GPU, against the stand-in library and a stand-in
// nvidia-smi: it must pass when nvidia-smi reports what NVML lists and
// fail, naming the GPU, when it does not.
func TestDeviceCheckScript(t *testing.T) {
	libDir := fakeNVMLDir(t)
	script, err := filepath.Abs("../../hack/device-check.sh")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, smi string // what nvidia-smi prints (CSV, no header, no units)
		wantErr   bool
		want      string
	}{
		{name: "agrees", smi: "0, NVIDIA H100 80GB HBM3, " + fakeH100UUID + ", 81559, Disabled\n1, Tesla T4, " + fakeT4UUID + ", 15360, [N/A]\n",
			want: "every GPU nvidia-smi reports is listed with its UUID and memory"},
		{name: "another UUID", smi: "0, NVIDIA H100 80GB HBM3, GPU-other, 81559, Disabled\n", wantErr: true,
			want: "GPU 0 (NVIDIA H100 80GB HBM3, GPU-other, 81559Mi) not listed as nvidia-smi reports it"},
		{name: "fewer GPUs than NVML lists", smi: "0, NVIDIA H100 80GB HBM3, " + fakeH100UUID + ", 81559, Disabled\n", wantErr: true,
			want: "nvidia-smi reports 1 GPUs, strata lists 2"},
		{name: "other memory", smi: "1, Tesla T4, " + fakeT4UUID + ", 16384, [N/A]\n", wantErr: true,
			want: "GPU 1 (Tesla T4, " + fakeT4UUID + ", 16Gi) not listed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			smiDir := t.TempDir()
			smi := "#!/bin/sh\nprintf '" + tt.smi + "'\n"
			if err := os.WriteFile(filepath.Join(smiDir, "nvidia-smi"), []byte(smi), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("bash", script)
			cmd.Env = append(os.Environ(), "PATH="+smiDir+":"+os.Getenv("PATH"), "LD_LIBRARY_PATH="+libDir,
				"STRATA="+bin("strata"), "OUT="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v\n%s", err, tt.wantErr, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, out)
			}
		})
	}
}

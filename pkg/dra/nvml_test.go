//go:build cgo

package dra

import (
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
)

func TestNVMLInventoryMockServer(t *testing.T) {
	server := dgxa100.NewWithGPUs(gpus.A100_SXM4_80GB, gpus.H100_SXM5_80GB)
	got, err := listNVML(server)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d GPUs, want 2", len(got))
	}
	for i, want := range []string{"A100-SXM4-80GB", "H100-80GB-HBM3"} {
		g := got[i]
		if g.Model != want || g.Index != i || g.Backend != BackendNVML || !g.MIGCapable {
			t.Errorf("GPU %d: %+v, want model %s, MIG capable", i, g, want)
		}
		if g.UUID == "" || !strings.HasPrefix(g.UUID, "GPU-") {
			t.Errorf("GPU %d UUID %q", i, g.UUID)
		}
		if g.MemoryBytes < 79<<30 {
			t.Errorf("GPU %d memory %d", i, g.MemoryBytes)
		}
		if g.DeviceName() != []string{"gpu-0", "gpu-1"}[i] {
			t.Errorf("GPU %d device name %s", i, g.DeviceName())
		}
	}
}

// fakeNVML is a one-GPU NVML built from go-nvml's generated mocks.
func fakeNVML(initRet, migRet, uuidRet nvml.Return) *mock.Interface {
	dev := &mock.Device{
		GetNameFunc:        func() (string, nvml.Return) { return "Tesla T4", nvml.SUCCESS },
		GetUUIDFunc:        func() (string, nvml.Return) { return "GPU-1234", uuidRet },
		GetMemoryInfoFunc:  func() (nvml.Memory, nvml.Return) { return nvml.Memory{Total: 16 << 30}, nvml.SUCCESS },
		GetMinorNumberFunc: func() (int, nvml.Return) { return 3, nvml.SUCCESS },
		GetMigModeFunc:     func() (int, int, nvml.Return) { return 0, 0, migRet },
	}
	return &mock.Interface{
		InitFunc:                   func() nvml.Return { return initRet },
		ShutdownFunc:               func() nvml.Return { return nvml.SUCCESS },
		DeviceGetCountFunc:         func() (int, nvml.Return) { return 1, nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(int) (nvml.Device, nvml.Return) { return dev, nvml.SUCCESS },
	}
}

func TestNVMLInventoryMock(t *testing.T) {
	tests := []struct {
		name                     string
		initRet, migRet, uuidRet nvml.Return
		want                     GPU
		wantErr                  string
		unavailable              bool
	}{
		{name: "T4 without MIG", initRet: nvml.SUCCESS, migRet: nvml.ERROR_NOT_SUPPORTED, uuidRet: nvml.SUCCESS,
			want: GPU{Index: 0, UUID: "GPU-1234", Model: "Tesla-T4", MemoryBytes: 16 << 30, Backend: BackendNVML, Minor: 3}},
		{name: "no library", initRet: nvml.ERROR_LIBRARY_NOT_FOUND, wantErr: "libnvidia-ml.so.1 could not be loaded", unavailable: true},
		{name: "no driver loaded", initRet: nvml.ERROR_DRIVER_NOT_LOADED, wantErr: "nvmlInit", unavailable: true},
		{name: "device error", initRet: nvml.SUCCESS, migRet: nvml.SUCCESS, uuidRet: nvml.ERROR_GPU_IS_LOST, wantErr: "GPU 0: nvmlDeviceGetUUID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lib := fakeNVML(tt.initRet, tt.migRet, tt.uuidRet)
			got, err := listNVML(lib)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				if errors.Is(err, ErrNVMLUnavailable) != tt.unavailable {
					t.Errorf("errors.Is(ErrNVMLUnavailable) = %v", !tt.unavailable)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if n := len(lib.ShutdownCalls()); n != 1 {
				t.Errorf("Shutdown called %d times", n)
			}
		})
	}
}

// TestNVMLWithoutLibrary runs the real go-nvml binding: on machines without
// an NVIDIA driver it must fail cleanly, not crash.
func TestNVMLWithoutLibrary(t *testing.T) {
	gpus, err := nvmlInventory()
	if err == nil {
		t.Logf("NVML found %d GPUs: %+v", len(gpus), gpus)
		return
	}
	if !errors.Is(err, ErrNVMLUnavailable) {
		t.Fatalf("error %v does not wrap ErrNVMLUnavailable", err)
	}
	t.Logf("as expected without a GPU: %v", err)
}

// TestNVMLThroughLibrary runs go-nvml's real binding (dlopen, symbol
// lookup, the C calls) against testdata/fakenvml, a stand-in
// libnvidia-ml.so.1 with an H100 and a T4, so that what listNVML makes of
// NVML's C answers is checked without a GPU.
func TestNVMLThroughLibrary(t *testing.T) {
	lib := filepath.Join(t.TempDir(), "libnvidia-ml.so.1")
	if out, err := exec.Command("gcc", "-shared", "-fPIC", "-O2", "-o", lib, "testdata/fakenvml/fakenvml.c").CombinedOutput(); err != nil {
		t.Fatalf("build the stand-in NVML library (needs gcc): %v\n%s", err, out)
	}
	want := []GPU{
		{Index: 0, UUID: "GPU-fa4e0000-0000-4000-8000-000000000000", Model: "H100-80GB-HBM3", MemoryBytes: 81559 << 20,
			MIGCapable: true, Backend: BackendNVML, Minor: 0},
		{Index: 1, UUID: "GPU-fa4e0001-0000-4000-8000-000000000001", Model: "Tesla-T4", MemoryBytes: 15360 << 20,
			Backend: BackendNVML, Minor: 3},
	}
	tests := []struct {
		name    string
		init    string // FAKE_NVML_INIT
		want    []GPU
		wantErr string
	}{
		{name: "two GPUs", want: want},
		{name: "driver not loaded", init: "driver-not-loaded", wantErr: "nvmlInit: Driver Not Loaded (9)"},
		{name: "two GPUs again after a failed init", want: want},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("FAKE_NVML_INIT", tt.init)
			got, err := listNVML(nvml.New(nvml.WithLibraryPath(lib)))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrNVMLUnavailable) {
					t.Fatalf("error %v, want %q wrapping ErrNVMLUnavailable", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

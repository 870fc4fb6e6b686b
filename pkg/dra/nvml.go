//go:build cgo

package dra

import (
	"fmt"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// nvmlInventory lists the GPUs through NVML. go-nvml loads
// libnvidia-ml.so.1 with dlopen on Init, so the binary builds and runs
// without the library; Init then fails with ERROR_LIBRARY_NOT_FOUND, which
// becomes ErrNVMLUnavailable.
func nvmlInventory() ([]GPU, error) {
	return listNVML(nvml.New())
}

func listNVML(lib nvml.Interface) (gpus []GPU, err error) {
	if ret := lib.Init(); ret != nvml.SUCCESS {
		if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
			return nil, fmt.Errorf("%w: libnvidia-ml.so.1 could not be loaded (no NVIDIA driver on this machine?): install the driver or put its library directory on LD_LIBRARY_PATH, or use --gpu-backend simulated --simulated-gpus 1xA100-80GB", ErrNVMLUnavailable)
		}
		return nil, fmt.Errorf("%w: nvmlInit: %s", ErrNVMLUnavailable, nvmlError(ret))
	}
	defer func() {
		if ret := lib.Shutdown(); ret != nvml.SUCCESS && err == nil {
			err = fmt.Errorf("nvmlShutdown: NVML error %d", int32(ret))
		}
	}()
	count, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvmlDeviceGetCount: %s", nvmlError(ret))
	}
	if count > MaxGPUs {
		return nil, fmt.Errorf("NVML reports %d GPUs, more than the %d one node can publish", count, MaxGPUs)
	}
	for i := range count {
		gpu, err := nvmlGPU(lib, i)
		if err != nil {
			return nil, fmt.Errorf("GPU %d: %w", i, err)
		}
		gpus = append(gpus, gpu)
	}
	return gpus, nil
}

func nvmlGPU(lib nvml.Interface, index int) (GPU, error) {
	dev, ret := lib.DeviceGetHandleByIndex(index)
	if ret != nvml.SUCCESS {
		return GPU{}, fmt.Errorf("nvmlDeviceGetHandleByIndex: %s", nvmlError(ret))
	}
	name, ret := dev.GetName()
	if ret != nvml.SUCCESS {
		return GPU{}, fmt.Errorf("nvmlDeviceGetName: %s", nvmlError(ret))
	}
	uuid, ret := dev.GetUUID()
	if ret != nvml.SUCCESS {
		return GPU{}, fmt.Errorf("nvmlDeviceGetUUID: %s", nvmlError(ret))
	}
	mem, ret := dev.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return GPU{}, fmt.Errorf("nvmlDeviceGetMemoryInfo: %s", nvmlError(ret))
	}
	minor, ret := dev.GetMinorNumber()
	if ret != nvml.SUCCESS {
		minor = -1
	}
	// MIG capability: the call succeeds on MIG-capable GPUs whatever the
	// current mode and answers NOT_SUPPORTED elsewhere.
	_, _, ret = dev.GetMigMode()
	migCapable := ret == nvml.SUCCESS
	return GPU{
		Index:       index,
		UUID:        uuid,
		Model:       shortModel(name),
		MemoryBytes: int64(mem.Total),
		MIGCapable:  migCapable,
		Backend:     BackendNVML,
		Minor:       minor,
	}, nil
}

// shortModel turns NVML's product name ("NVIDIA A100-SXM4-80GB",
// "NVIDIA H100 80GB HBM3", "Tesla T4") into an attribute value without
// spaces ("A100-SXM4-80GB", "H100-80GB-HBM3", "Tesla-T4").
func shortModel(name string) string {
	name = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), "NVIDIA "))
	return strings.Join(strings.Fields(name), "-")
}

// nvmlError describes a return code; go-nvml answers with its own table
// when the library is not loaded.
func nvmlError(ret nvml.Return) string {
	return fmt.Sprintf("%s (%d)", ret.Error(), int32(ret))
}

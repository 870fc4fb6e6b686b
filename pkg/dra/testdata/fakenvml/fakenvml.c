// A stand-in for NVIDIA's libnvidia-ml.so.1 with two fixed GPUs, for
// tests on machines without a GPU. It exports the NVML calls Strata's
// inventory makes, with NVML's C signatures, so that go-nvml loads it with
// dlopen and the binary resolves NVML's symbols against it as it would
// against the driver's library: the same binding path, only the answers
// are canned. FAKE_NVML_INIT=driver-not-loaded makes nvmlInit_v2 fail as
// on a machine whose kernel module is not loaded.
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
enum {
	NVML_SUCCESS = 0,
	NVML_ERROR_UNINITIALIZED = 1,
	NVML_ERROR_INVALID_ARGUMENT = 2,
	NVML_ERROR_NOT_SUPPORTED = 3,
	NVML_ERROR_INSUFFICIENT_SIZE = 7,
	NVML_ERROR_DRIVER_NOT_LOADED = 9,
};

typedef struct {
	unsigned long long total, free, used;
} nvmlMemory_t;

struct fake_gpu {
	const char *name, *uuid;
	unsigned long long memory;
	unsigned int minor;
	int mig; // 1: MIG-capable (nvmlDeviceGetMigMode answers)
};

typedef struct fake_gpu *nvmlDevice_t;

static struct fake_gpu gpus[] = {
	{"NVIDIA H100 80GB HBM3", "GPU-fa4e0000-0000-4000-8000-000000000000", 81559ULL << 20, 0, 1},
	{"Tesla T4", "GPU-fa4e0001-0000-4000-8000-000000000001", 15360ULL << 20, 3, 0},
};

static int initialized;

nvmlReturn_t nvmlInit_v2(void) {
	const char *mode = getenv("FAKE_NVML_INIT");
	if (mode && strcmp(mode, "driver-not-loaded") == 0)
		return NVML_ERROR_DRIVER_NOT_LOADED;
	initialized++;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit(void) { return nvmlInit_v2(); }

nvmlReturn_t nvmlShutdown(void) {
	if (!initialized)
		return NVML_ERROR_UNINITIALIZED;
	initialized--;
	return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t r) {
	switch (r) {
	case NVML_SUCCESS: return "Success";
	case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
	case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
	case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
	case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
	case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
	default: return "Unknown Error";
	}
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
	if (!initialized)
		return NVML_ERROR_UNINITIALIZED;
	*count = sizeof(gpus) / sizeof(gpus[0]);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *dev) {
	if (!initialized)
		return NVML_ERROR_UNINITIALIZED;
	if (i >= sizeof(gpus) / sizeof(gpus[0]) || !dev)
		return NVML_ERROR_INVALID_ARGUMENT;
	*dev = &gpus[i];
	return NVML_SUCCESS;
}

static nvmlReturn_t copy(const char *s, char *buf, unsigned int len) {
	if (!buf)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (strlen(s) + 1 > len)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	strcpy(buf, s);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int len) {
	return d ? copy(d->name, name, len) : NVML_ERROR_INVALID_ARGUMENT;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int len) {
	return d ? copy(d->uuid, uuid, len) : NVML_ERROR_INVALID_ARGUMENT;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
	if (!d || !m)
		return NVML_ERROR_INVALID_ARGUMENT;
	// Some memory in use, so that total and free differ as on a driver.
	m->total = d->memory;
	m->used = 512ULL << 20;
	m->free = d->memory - m->used;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t d, unsigned int *minor) {
	if (!d || !minor)
		return NVML_ERROR_INVALID_ARGUMENT;
	*minor = d->minor;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *current, unsigned int *pending) {
	if (!d || !current || !pending)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (!d->mig)
		return NVML_ERROR_NOT_SUPPORTED;
	*current = *pending = 0;
	return NVML_SUCCESS;
}

package dra

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/utils/ptr"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/strata-dev/strata/pkg/gpu"
)

type testDirs struct{ cdi, state string }

func newTestState(t *testing.T, dirs testDirs, inventory string) *state {
	t.Helper()
	gpus, err := ParseSimulated(inventory, "n1")
	if err != nil {
		t.Fatal(err)
	}
	s, err := newState("n1", gpus, dirs.cdi, dirs.state)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tempDirs(t *testing.T) testDirs {
	d := t.TempDir()
	return testDirs{cdi: filepath.Join(d, "cdi"), state: filepath.Join(d, "state")}
}

type share struct {
	request, device string
	compute         int64 // 0: no consumed capacity recorded
	memory          int64
}

// allocatedClaim is a claim as the scheduler leaves it: allocated and
// reserved for pod.
func allocatedClaim(name string, pod *corev1.Pod, shares ...share) *resourcev1.ResourceClaim {
	claim := &resourcev1.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("claim-" + name)},
		Status: resourcev1.ResourceClaimStatus{
			Allocation: &resourcev1.AllocationResult{},
		},
	}
	if pod != nil {
		claim.Status.ReservedFor = []resourcev1.ResourceClaimConsumerReference{{Resource: "pods", Name: pod.Name, UID: pod.UID}}
	}
	for i, s := range shares {
		r := resourcev1.DeviceRequestAllocationResult{
			Request: s.request, Driver: DriverName, Pool: "n1", Device: s.device,
			ShareID: ptr.To(types.UID(name + "-share-" + string(rune('a'+i)))),
		}
		if s.compute > 0 {
			r.ConsumedCapacity = map[resourcev1.QualifiedName]resource.Quantity{
				gpu.CapacityCompute: *resource.NewQuantity(s.compute, resource.DecimalSI),
				gpu.CapacityMemory:  *resource.NewQuantity(s.memory, resource.BinarySI),
			}
		}
		claim.Status.Allocation.Devices.Results = append(claim.Status.Allocation.Devices.Results, r)
	}
	return claim
}

// podWithTemplateClaim is a pod whose claim "gpu" came from a template;
// containers "main" and the init container "setup" use it, "sidecar" does
// not.
func podWithTemplateClaim(name, claimName string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("pod-" + name)},
		Spec: corev1.PodSpec{
			NodeName:       "n1",
			ResourceClaims: []corev1.PodResourceClaim{{Name: "gpu", ResourceClaimTemplateName: ptr.To("tmpl")}},
			InitContainers: []corev1.Container{{Name: "setup", Resources: corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "gpu"}}}}},
			Containers: []corev1.Container{
				{Name: "main", Resources: corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "gpu"}}}},
				{Name: "sidecar"},
			},
		},
		Status: corev1.PodStatus{ResourceClaimStatuses: []corev1.PodResourceClaimStatus{{Name: "gpu", ResourceClaimName: ptr.To(claimName)}}},
	}
}

func readSpec(t *testing.T, dir string, uid types.UID) *cdispec.Spec {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, specName(uid)))
	if err != nil {
		t.Fatal(err)
	}
	var spec cdispec.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	return &spec
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func TestPrepareShareAndUnprepare(t *testing.T) {
	ctx := context.Background()
	dirs := tempDirs(t)
	pod := podWithTemplateClaim("p1", "p1-gpu")
	s := newTestState(t, dirs, "2xA100-80GB")
	claim := allocatedClaim("p1-gpu", pod, share{request: "gpu", device: "gpu-1", compute: 250, memory: 10 << 30})

	res := s.prepare(ctx, []*resourcev1.ResourceClaim{claim})[claim.UID]
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	wantID := "gpu.strata.dev/gpu=claim-p1-gpu-gpu"
	if len(res.Devices) != 1 || res.Devices[0].DeviceName != "gpu-1" || res.Devices[0].PoolName != "n1" ||
		!slices.Equal(res.Devices[0].CDIDeviceIDs, []string{wantID}) || *res.Devices[0].ShareID != "p1-gpu-share-a" {
		t.Fatalf("devices %+v", res.Devices)
	}

	spec := readSpec(t, dirs.cdi, claim.UID)
	if spec.Kind != "gpu.strata.dev/gpu" || len(spec.Devices) != 1 || spec.Devices[0].Name != "claim-p1-gpu-gpu" {
		t.Fatalf("CDI spec %+v", spec)
	}
	env := envMap(spec.Devices[0].ContainerEdits.Env)
	want := map[string]string{
		EnvNVIDIAVisibleDevices: "GPU-sim-n1-1",
		EnvCUDAVisibleDevices:   "GPU-sim-n1-1",
		EnvDevices:              "gpu-1",
		EnvModel:                "A100-80GB",
		EnvBackend:              "simulated",
		EnvClaim:                "default/p1-gpu",
		EnvComputeMilli:         "250",
		EnvMPSThreadPercentage:  "25",
		EnvMemoryLimit:          "10737418240",
		EnvMPSMemoryLimit:       "0=10240M",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s=%q, want %q", k, env[k], v)
		}
	}

	// Idempotent: the kubelet may ask again.
	again := s.prepare(ctx, []*resourcev1.ResourceClaim{claim})[claim.UID]
	if again.Err != nil || len(again.Devices) != 1 || again.Devices[0].CDIDeviceIDs[0] != wantID {
		t.Fatalf("second prepare: %+v", again)
	}

	// A restarted driver knows the claim from its checkpoint, rewrites a
	// CDI spec that a reboot removed, and cleans up on unprepare.
	if err := os.Remove(filepath.Join(dirs.cdi, specName(claim.UID))); err != nil {
		t.Fatal(err)
	}
	s2 := newTestState(t, dirs, "2xA100-80GB")
	if err := s2.restore(); err != nil {
		t.Fatal(err)
	}
	readSpec(t, dirs.cdi, claim.UID)
	obj := kubeletplugin.NamespacedObject{NamespacedName: types.NamespacedName{Namespace: "default", Name: "p1-gpu"}, UID: claim.UID}
	for i := range 2 { // unprepare is idempotent too
		if err := s2.unprepare(ctx, []kubeletplugin.NamespacedObject{obj})[claim.UID]; err != nil {
			t.Fatalf("unprepare %d: %v", i, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dirs.cdi, specName(claim.UID))); !os.IsNotExist(err) {
		t.Errorf("CDI spec left behind: %v", err)
	}
	s3 := newTestState(t, dirs, "2xA100-80GB")
	if len(s3.claims) != 0 {
		t.Errorf("checkpoint still has %d claims", len(s3.claims))
	}
}

func TestPrepareWholeGPUsAndRequests(t *testing.T) {
	ctx := context.Background()
	dirs := tempDirs(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "train", Namespace: "default", UID: "pod-train"},
		Spec: corev1.PodSpec{
			NodeName:       "n1",
			ResourceClaims: []corev1.PodResourceClaim{{Name: "gpus", ResourceClaimName: ptr.To("shared-claim")}},
			Containers: []corev1.Container{
				{Name: "trainer", Resources: corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "gpus", Request: "big"}}}},
				{Name: "monitor", Resources: corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "gpus", Request: "small"}}}},
			},
		},
	}
	s := newTestState(t, dirs, "3xA100-80GB")
	// "big" got two whole GPUs without consumed capacity recorded (the
	// exclusive case); "small" a subrequest share of the third.
	claim := allocatedClaim("shared-claim", pod,
		share{request: "big", device: "gpu-0"}, share{request: "big", device: "gpu-1"},
		share{request: "small/tiny", device: "gpu-2", compute: 100})
	res := s.prepare(ctx, []*resourcev1.ResourceClaim{claim})[claim.UID]
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	spec := readSpec(t, dirs.cdi, claim.UID)
	if len(spec.Devices) != 2 {
		t.Fatalf("want one CDI device per request, got %+v", spec.Devices)
	}
	big, small := envMap(spec.Devices[0].ContainerEdits.Env), envMap(spec.Devices[1].ContainerEdits.Env)
	if big[EnvNVIDIAVisibleDevices] != "GPU-sim-n1-0,GPU-sim-n1-1" || big[EnvComputeMilli] != "1000" {
		t.Errorf("big: %v", big)
	}
	for _, k := range []string{EnvMPSThreadPercentage, EnvMemoryLimit, EnvMPSMemoryLimit} {
		if v, ok := big[k]; ok {
			t.Errorf("whole GPUs set %s=%s", k, v)
		}
	}
	if small[EnvDevices] != "gpu-2" || small[EnvMPSThreadPercentage] != "10" {
		t.Errorf("small: %v", small)
	}
	// The kubelet gives each container the CDI devices of the requests it
	// names: one device per top-level request.
	ids := map[string][]string{}
	for _, d := range res.Devices {
		ids[d.Requests[0]] = append(ids[d.Requests[0]], d.CDIDeviceIDs...)
	}
	want := map[string][]string{
		"big":        {"gpu.strata.dev/gpu=claim-shared-claim-big", "gpu.strata.dev/gpu=claim-shared-claim-big"},
		"small/tiny": {"gpu.strata.dev/gpu=claim-shared-claim-small"},
	}
	if !maps.EqualFunc(ids, want, slices.Equal) {
		t.Errorf("CDI devices by request: %v, want %v", ids, want)
	}
}

func TestPrepareRefuses(t *testing.T) {
	ctx := context.Background()
	s := newTestState(t, tempDirs(t), "1xA100-80GB")
	first := allocatedClaim("a", nil, share{request: "gpu", device: "gpu-0", compute: 600})
	if err := s.prepare(ctx, []*resourcev1.ResourceClaim{first})[first.UID].Err; err != nil {
		t.Fatal(err)
	}
	otherPool := allocatedClaim("c", nil, share{request: "gpu", device: "gpu-0", compute: 100})
	otherPool.Status.Allocation.Devices.Results[0].Pool = "n2"
	unallocated := allocatedClaim("e", nil)
	unallocated.Status.Allocation = nil
	tests := []struct {
		claim   *resourcev1.ResourceClaim
		wantErr string
	}{
		{otherPool, `not in this node's pool "n1"`},
		{allocatedClaim("d", nil, share{request: "gpu", device: "gpu-7", compute: 100}), `no GPU "gpu-7"`},
		{unallocated, "not allocated"},
		{allocatedClaim("f", nil), "has no device of driver gpu.strata.dev"},
	}
	for _, tt := range tests {
		err := s.prepare(ctx, []*resourcev1.ResourceClaim{tt.claim})[tt.claim.UID].Err
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("claim %s: error %v, want %q", tt.claim.Name, err, tt.wantErr)
		}
	}
	// The refused claims left nothing behind.
	if len(s.claims) != 1 {
		t.Errorf("%d claims prepared, want 1", len(s.claims))
	}
	// An apparent over-commit (the previous holder not unprepared yet) is
	// the scheduler's call: prepared, with a warning.
	next := allocatedClaim("g", nil, share{request: "gpu", device: "gpu-0", compute: 500})
	if err := s.checkCapacity(&preparedClaim{UID: next.UID, Devices: []preparedDevice{{Device: "gpu-0", ComputeMilli: 500}}}); err == nil || !strings.Contains(err.Error(), "over-committed (compute 1100/1000") {
		t.Errorf("checkCapacity: %v", err)
	}
	if err := s.prepare(ctx, []*resourcev1.ResourceClaim{next})[next.UID].Err; err != nil {
		t.Errorf("over-committed claim refused: %v", err)
	}
}

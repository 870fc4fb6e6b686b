package gpustate

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/dynamic-resource-allocation/structured"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/strata-dev/strata/pkg/dra"
	"github.com/strata-dev/strata/pkg/gpu"
)

// TestDriverSliceContract ties the two sides of the GPU contract (pkg/gpu)
// together: the ResourceSlices the DRA driver publishes for an inventory
// (dra.DriverResources, through upstream's ResourceSlice controller as the
// kubelet plugin helper runs it) must read back, through the plugins'
// parsing, as exactly the GPUs the driver found: count, index, model,
// compute and memory capacity, node and device identity.
func TestDriverSliceContract(t *testing.T) {
	for _, tc := range []struct {
		name, node, inventory string
	}{
		{name: "mixed models", node: "n1", inventory: "2xA100-80GB,1xT4-16GB"},
		{name: "one GPU", node: "edge-0", inventory: "1xT4-16GB"},
		{name: "full node", node: "gpu-node-7.example.com", inventory: "8xH100-80GB"},
		{name: "many small GPUs", node: "n2", inventory: "4xL4-24GB,12xT4-16GB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each publishes to its own fake API server
			gpus, err := dra.ParseSimulated(tc.inventory, tc.node)
			if err != nil {
				t.Fatal(err)
			}
			published := publish(t, tc.node, dra.DriverResources(tc.node, gpus), len(gpus))

			// Per GPU, as DRASource parses each slice.
			byIndex := map[int]sliceGPU{}
			for _, sl := range published {
				p, ok := parseSlice(sl)
				if !ok {
					t.Fatalf("slice %s of driver %q, node %v not read as the GPU driver's", sl.Name, sl.Spec.Driver, sl.Spec.NodeName)
				}
				if p.node != tc.node {
					t.Errorf("slice %s read as node %q, want %q", sl.Name, p.node, tc.node)
				}
				for i, g := range p.gpus {
					if _, dup := byIndex[g.index]; dup {
						t.Errorf("GPU index %d read twice", g.index)
					}
					byIndex[g.index] = g
					checkDevice(t, &sl.Spec.Devices[i], g)
				}
			}
			if len(byIndex) != len(gpus) {
				t.Fatalf("read %d GPUs, the driver published %d", len(byIndex), len(gpus))
			}
			for _, want := range gpus {
				got, ok := byIndex[want.Index]
				if !ok {
					t.Errorf("GPU %d not read back", want.Index)
					continue
				}
				wantID := structured.MakeDeviceID(gpu.DriverName, tc.node, want.DeviceName())
				if got.id != wantID || got.model != want.Model || got.compute != gpu.MilliPerGPU || got.mem != want.MemoryBytes {
					t.Errorf("GPU %d read as %s model %q compute %d memory %d; want %s model %q compute %d memory %d",
						want.Index, got.id, got.model, got.compute, got.mem, wantID, want.Model, gpu.MilliPerGPU, want.MemoryBytes)
				}
			}

			// Per node, as the plugins see it with nothing allocated.
			nodes := nodesFromSlices([]fwk.NodeInfo{nodeInfo(tc.node, 8000, 32<<30)}, (&sliceCache{}).get(published),
				func(structured.DeviceID) deviceUsage { return deviceUsage{} })
			n := nodes[tc.node]
			wantFree, wantMem, wantMax := make([]int64, len(gpus)), make([]int64, len(gpus)), int64(0)
			for _, g := range gpus {
				wantFree[g.Index], wantMem[g.Index] = gpu.MilliPerGPU, g.MemoryBytes
				wantMax = max(wantMax, g.MemoryBytes)
			}
			// The model keeps one model per node: the first GPU's.
			if n.Model != gpus[0].Model || !slices.Equal(n.GPUFree, wantFree) || !slices.Equal(n.GPUMemFree, wantMem) || n.GPUMemMax != wantMax {
				t.Errorf("node read as %v; want model %s, free %v, memory %v, largest %d", n, gpus[0].Model, wantFree, wantMem, wantMax)
			}
		})
	}
}

// checkDevice checks what other readers than parseSlice take from a
// device: the preemption plugin reads the index from the device name
// alone (allocation results carry no attributes), and claims for several
// GPUs ask distinct values of the qualified uuid attribute.
func checkDevice(t *testing.T, d *resourceapi.Device, g sliceGPU) {
	t.Helper()
	if i, ok := gpu.DeviceIndex(d.Name); !ok || i != g.index {
		t.Errorf("device %s: index from its name %d (%v), from its attribute %d", d.Name, i, ok, g.index)
	}
	if a, ok := gpu.Attribute(d, gpu.AttrUUID); !ok || a.StringValue == nil || *a.StringValue == "" {
		t.Errorf("device %s: no %s attribute", d.Name, gpu.Qualified(gpu.AttrUUID))
	}
}

// publish runs upstream's ResourceSlice controller for the node, as the
// driver's kubelet plugin helper does, against a fake API server, and
// returns the slices once they hold all the devices.
func publish(t *testing.T, node string, res resourceslice.DriverResources, devices int) []*resourceapi.ResourceSlice {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, UID: "node-uid"}})
	ctrl, err := resourceslice.StartController(ctx, resourceslice.Options{
		DriverName: gpu.DriverName,
		KubeClient: client,
		Owner:      &resourceslice.Owner{APIVersion: "v1", Kind: "Node", Name: node},
		Resources:  &res,
	})
	if err != nil {
		t.Fatalf("start ResourceSlice controller: %v", err)
	}
	defer ctrl.Stop()
	var out []*resourceapi.ResourceSlice
	err = wait.PollUntilContextCancel(ctx, 10*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		list, err := client.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		out = out[:0]
		n := 0
		for i := range list.Items {
			out = append(out, &list.Items[i])
			n += len(list.Items[i].Spec.Devices)
		}
		return n == devices, nil
	})
	if err != nil {
		t.Fatalf("waiting for %d published devices: %v", devices, err)
	}
	return out
}

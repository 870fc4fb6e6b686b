package gpupreempt

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/pkg/gpu"
	"github.com/strata-dev/strata/pkg/gpushare"
)

var t0 = time.Unix(1000, 0)

// v is a victim holding milli-GPU per GPU index.
func v(name string, prio int32, age time.Duration, milli map[int]int64) victim {
	held := map[int]gpuHold{}
	for i, m := range milli {
		held[i] = gpuHold{milli: m}
	}
	return victim{pods: []*v1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: name}}}, held: held, prio: prio, newest: t0.Add(-age)}
}

// vm is a victim holding milli-GPU and GPU memory on GPU 0.
func vm(name string, age time.Duration, milli, mem int64) victim {
	vic := v(name, 0, age, nil)
	vic.held[0] = gpuHold{milli: milli, mem: mem}
	return vic
}

func names(vs []victim) []string {
	var out []string
	for _, v := range vs {
		for _, p := range v.pods {
			out = append(out, p.Name)
		}
	}
	return out
}

func TestSelectVictims(t *testing.T) {
	full := gpushare.Node{GPUFree: []int64{0, 0}, CPUFree: 1000, MemFree: 1 << 30}
	cpuOnly := func(vic victim, cpu int64) victim { vic.cpu = cpu; return vic }
	tests := []struct {
		name   string
		node   gpushare.Node
		task   gpushare.Task
		cands  []victim
		want   []string
		wantOK bool
	}{
		{"one whole GPU from the lowest priority", full, gpushare.Task{NumGPU: 1, GPUMilli: 1000},
			[]victim{v("a", 0, time.Hour, map[int]int64{0: 1000}), v("b", -10, time.Hour, map[int]int64{1: 1000})}, []string{"b"}, true},
		{"same priority: the newest goes", full, gpushare.Task{NumGPU: 1, GPUMilli: 1000},
			[]victim{v("old", 0, time.Hour, map[int]int64{0: 1000}), v("new", 0, time.Minute, map[int]int64{1: 1000})}, []string{"new"}, true},
		{"shares: only as many as needed", gpushare.Node{GPUFree: []int64{0}}, gpushare.Task{NumGPU: 1, GPUMilli: 500},
			[]victim{v("s1", 0, 4*time.Minute, map[int]int64{0: 250}), v("s2", 0, 3*time.Minute, map[int]int64{0: 250}),
				v("s3", 0, 2*time.Minute, map[int]int64{0: 250}), v("s4", 0, time.Minute, map[int]int64{0: 250})}, []string{"s4", "s3"}, true},
		{"reprieve a victim that did not help", full, gpushare.Task{NumGPU: 1, GPUMilli: 1000},
			[]victim{v("small", -10, time.Hour, map[int]int64{0: 500}), v("whole", 0, time.Hour, map[int]int64{1: 1000})}, []string{"whole"}, true},
		{"not enough even with all", full, gpushare.Task{NumGPU: 2, GPUMilli: 1000},
			[]victim{v("a", 0, time.Hour, map[int]int64{0: 1000})}, nil, false},
		{"a GPU alone is not enough when the node lacks CPU", gpushare.Node{GPUFree: []int64{0, 1000}, CPUFree: 0, MemFree: 1 << 30},
			gpushare.Task{CPU: 2000, NumGPU: 1, GPUMilli: 1000},
			[]victim{cpuOnly(v("gpu-small-cpu", -10, time.Hour, map[int]int64{0: 1000}), 500), cpuOnly(v("gpu-big-cpu", 0, time.Hour, map[int]int64{0: 0, 1: 0}), 2000)},
			[]string{"gpu-big-cpu"}, true},
		{"fits already: preemption cannot help by this model", gpushare.Node{GPUFree: []int64{1000}, CPUFree: 4000}, gpushare.Task{CPU: 1000, NumGPU: 1, GPUMilli: 1000},
			[]victim{v("a", 0, time.Hour, map[int]int64{0: 0})}, nil, false},
		{"nothing frees the CPU", gpushare.Node{GPUFree: []int64{1000}, CPUFree: 0}, gpushare.Task{CPU: 2000, NumGPU: 1, GPUMilli: 1000},
			[]victim{cpuOnly(v("a", 0, time.Hour, map[int]int64{0: 1000}), 500)}, nil, false},
		// GPU 0 has compute left but 10Gi of memory: the pod asking 40Gi
		// needs the pod holding the memory gone, not the newer one holding
		// compute.
		{"GPU memory: the pod holding it goes", gpushare.Node{GPUFree: []int64{100}, GPUMemFree: []int64{10 << 30}, CPUFree: 1000, MemFree: 1 << 30},
			gpushare.Task{NumGPU: 1, GPUMilli: 100, GPUMem: 40 << 30},
			[]victim{vm("compute", time.Minute, 800, 0), vm("memory", time.Hour, 100, 70<<30)}, []string{"memory"}, true},
		{"GPU memory: all of it is not enough", gpushare.Node{GPUFree: []int64{900}, GPUMemFree: []int64{10 << 30}, CPUFree: 1000, MemFree: 1 << 30},
			gpushare.Task{NumGPU: 1, GPUMilli: 100, GPUMem: 60 << 30},
			[]victim{vm("small", time.Hour, 100, 20<<30)}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := selectVictims(tt.node, tt.task, tt.cands)
			if ok != tt.wantOK || !slices.Equal(names(got), tt.want) {
				t.Fatalf("victims %v ok %v, want %v ok %v", names(got), ok, tt.want, tt.wantOK)
			}
		})
	}
}

// cluster is a snapshot of nodes with pods, each pod holding GPU compute
// through an allocated claim named after it.
type cluster struct {
	nodes  map[string]*framework.NodeInfo
	claims map[string]*resourceapi.ResourceClaim
}

func newCluster(nodes ...string) *cluster {
	c := &cluster{nodes: map[string]*framework.NodeInfo{}, claims: map[string]*resourceapi.ResourceClaim{}}
	for _, n := range nodes {
		ni := framework.NewNodeInfo()
		ni.SetNode(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
		c.nodes[n] = ni
	}
	return c
}

// add places a pod on node holding milli of the GPU with index index; gang
// names its PodGroup ("" for none).
func (c *cluster) add(name, node string, prio int32, index int, milli int64, gang string, terminating bool) *v1.Pod {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", CreationTimestamp: metav1.NewTime(t0)},
		Spec: v1.PodSpec{NodeName: node, Priority: ptr.To(prio), Containers: []v1.Container{{Name: "c",
			Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")}}}}},
		Status: v1.PodStatus{ResourceClaimStatuses: []v1.PodResourceClaimStatus{{Name: "gpu", ResourceClaimName: ptr.To(name)}}},
	}
	if gang != "" {
		pod.Spec.SchedulingGroup = &v1.PodSchedulingGroup{PodGroupName: ptr.To(gang)}
	}
	if terminating {
		pod.DeletionTimestamp = ptr.To(metav1.NewTime(t0))
	}
	c.claims[name] = &resourceapi.ResourceClaim{Status: resourceapi.ResourceClaimStatus{Allocation: &resourceapi.AllocationResult{
		Devices: resourceapi.DeviceAllocationResult{Results: []resourceapi.DeviceRequestAllocationResult{{
			Driver: gpu.DriverName, Device: gpu.DeviceName(index),
			ConsumedCapacity: map[resourceapi.QualifiedName]resource.Quantity{gpu.CapacityCompute: *resource.NewQuantity(milli, resource.DecimalSI)},
		}}}}}}
	c.nodes[node].AddPod(pod)
	return pod
}

func (c *cluster) getClaim(_, name string) (*resourceapi.ResourceClaim, error) {
	if cl, ok := c.claims[name]; ok {
		return cl, nil
	}
	return nil, fmt.Errorf("no claim %s", name)
}

func (c *cluster) list() []fwk.NodeInfo {
	var out []fwk.NodeInfo
	for _, n := range []string{"n1", "n2"} {
		if ni, ok := c.nodes[n]; ok {
			out = append(out, ni)
		}
	}
	return out
}

func TestCandidates(t *testing.T) {
	c := newCluster("n1", "n2")
	c.add("solo", "n1", 0, 0, 500, "", false)
	c.add("gang-a", "n1", 0, 1, 1000, "train", false)
	c.add("gang-b", "n2", 0, 0, 1000, "train", false)
	c.add("important", "n1", 200, 0, 500, "", false)
	c.add("leaving", "n1", 0, 2, 1000, "", true)
	c.add("mixed-low", "n1", 0, 3, 1000, "mixed", false)
	c.add("mixed-high", "n2", 200, 1, 1000, "mixed", false)
	c.add("loose-a", "n1", 0, 4, 1000, "loose", false)
	c.add("loose-b", "n2", 0, 2, 1000, "loose", false)

	// PodGroups "train" and "mixed" have disruptionMode All, "loose"
	// Single.
	unitOf := func(p *v1.Pod) string {
		if g := p.Spec.SchedulingGroup; g != nil && (*g.PodGroupName == "train" || *g.PodGroupName == "mixed") {
			return "ns/" + *g.PodGroupName
		}
		return ""
	}
	got := candidates(c.nodes["n1"], 100, unitOf, gangMembers(c.list(), unitOf), c.getClaim)
	byFirst := map[string]victim{}
	for _, v := range got {
		byFirst[v.pods[0].Name] = v
	}
	if len(got) != 3 {
		t.Fatalf("candidates %v, want solo, the train gang and loose-a", names(got))
	}
	if v, ok := byFirst["loose-a"]; !ok || len(v.pods) != 1 {
		t.Errorf("loose-a (disruptionMode Single) should go alone: %v", names([]victim{v}))
	}
	if v, ok := byFirst["solo"]; !ok || v.held[0].milli != 500 || v.cpu != 1000 {
		t.Errorf("solo: %+v, want 500 milli-GPU of GPU 0 and 1 CPU released", v)
	}
	gang, ok := byFirst["gang-a"]
	if !ok {
		t.Fatalf("the train gang is not a candidate: %v", names(got))
	}
	if !slices.Equal(names([]victim{gang}), []string{"gang-a", "gang-b"}) {
		t.Errorf("gang victim deletes %v, want both members", names([]victim{gang}))
	}
	if gang.held[1].milli != 1000 || gang.held[0].milli != 0 || gang.cpu != 1000 {
		t.Errorf("gang releases %v and %d milli-CPU on n1, want only gang-a's GPU 1 and CPU", gang.held, gang.cpu)
	}
}

func TestAwaitingVictims(t *testing.T) {
	c := newCluster("n1", "n2")
	c.add("leaving", "n1", 0, 0, 1000, "", true)
	c.add("staying", "n2", 0, 0, 1000, "", false)
	for _, tc := range []struct {
		name      string
		nominated string
		prio      int32
		want      bool
	}{
		{"not nominated", "", 100, false},
		{"victim still terminating", "n1", 100, true},
		{"terminating pod is not lower priority", "n1", 0, false},
		{"nothing terminating there", "n2", 100, false},
		{"nominated node gone", "n3", 100, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &v1.Pod{Spec: v1.PodSpec{Priority: ptr.To(tc.prio)}, Status: v1.PodStatus{NominatedNodeName: tc.nominated}}
			if _, got := awaitingVictims(pod, nodeLister{c}); got != tc.want {
				t.Errorf("awaitingVictims = %v, want %v", got, tc.want)
			}
		})
	}
}

// nodeLister serves the cluster's NodeInfos.
type nodeLister struct{ *cluster }

func (l nodeLister) List() ([]fwk.NodeInfo, error)                                 { return l.list(), nil }
func (l nodeLister) HavePodsWithAffinityList() ([]fwk.NodeInfo, error)             { return nil, nil }
func (l nodeLister) HavePodsWithRequiredAntiAffinityList() ([]fwk.NodeInfo, error) { return nil, nil }
func (l nodeLister) HavePodsWithRequiredNonHostScopedAntiAffinityList() ([]fwk.NodeInfo, error) {
	return nil, nil
}
func (l nodeLister) Get(name string) (fwk.NodeInfo, error) {
	if ni, ok := l.nodes[name]; ok {
		return ni, nil
	}
	return nil, fmt.Errorf("node %s not found", name)
}

func TestMightHelp(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   *fwk.Status
		want bool
	}{
		{"resources short", fwk.NewStatus(fwk.Unschedulable, "Insufficient cpu").WithPlugin("NodeResourcesFit"), true},
		{"GPUs full", fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "cannot allocate all claims").WithPlugin("DynamicResources"), true},
		{"no GPU room (StrataGPUFit)", fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "no gpu.strata.dev GPU wholly free").WithPlugin("StrataGPUFit"), true},
		{"taint not tolerated", fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "untolerated taint").WithPlugin("TaintToleration"), false},
		{"node affinity", fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "node(s) didn't match").WithPlugin("NodeAffinity"), false},
		{"passed Filter", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mightHelp(tc.st); got != tc.want {
				t.Errorf("mightHelp(%v) = %v, want %v", tc.st, got, tc.want)
			}
		})
	}
}

func TestGPUHeld(t *testing.T) {
	c := newCluster("n1")
	pod := c.add("p", "n1", 0, 1, 250, "", false)
	c.claims["p"].Status.Allocation.Devices.Results[0].ConsumedCapacity[gpu.CapacityMemory] = resource.MustParse("20Gi")
	c.claims["p"].Status.Allocation.Devices.Results = append(c.claims["p"].Status.Allocation.Devices.Results,
		resourceapi.DeviceRequestAllocationResult{Driver: gpu.DriverName, Device: "gpu-0"},                            // exclusive: whole GPU, memory unknown
		resourceapi.DeviceRequestAllocationResult{Driver: "nic.example.com", Device: "gpu-3"},                         // another driver's device
		resourceapi.DeviceRequestAllocationResult{Driver: gpu.DriverName, Device: "gpu-2", AdminAccess: ptr.To(true)}) // monitoring: frees nothing
	got := gpuHeld(pod, c.getClaim)
	want := map[int]gpuHold{1: {milli: 250, mem: 20 << 30}, 0: {milli: 1000}}
	if !maps.Equal(got, want) {
		t.Fatalf("gpuHeld = %v, want %v", got, want)
	}
}

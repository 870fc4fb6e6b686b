package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/strata-dev/strata/pkg/dra"
	"github.com/strata-dev/strata/pkg/gpu"
	"github.com/strata-dev/strata/pkg/gpushare"
)

func TestServerNode(t *testing.T) {
	now := time.Now()
	n := serverNode(TraceNode{Name: "openb-node-0001", CPU: 96000, MemMiB: 1024, GPUs: 8, Model: "G2"}, now)
	if n.UID != "" || len(n.Spec.Taints) != 0 {
		t.Errorf("uid %q taints %v: want none", n.UID, n.Spec.Taints)
	}
	for _, rl := range []v1.ResourceList{n.Status.Capacity, n.Status.Allocatable} {
		if rl.Cpu().MilliValue() != 96000 || rl.Memory().Value() != 1024<<20 || rl.Pods().Value() != 1000 {
			t.Errorf("resources %v", rl)
		}
	}
	if len(n.Status.Conditions) != 1 || n.Status.Conditions[0].Type != v1.NodeReady || n.Status.Conditions[0].Status != v1.ConditionTrue ||
		!n.Status.Conditions[0].LastHeartbeatTime.Time.Equal(now.Truncate(time.Second)) && !n.Status.Conditions[0].LastHeartbeatTime.Time.Equal(now) {
		t.Errorf("conditions %+v: want Ready now", n.Status.Conditions)
	}
	l := serverLease(n, now)
	if l.Namespace != v1.NamespaceNodeLease || l.Name != n.Name || *l.Spec.HolderIdentity != n.Name || l.OwnerReferences[0].Kind != "Node" {
		t.Errorf("lease %+v", l)
	}
}

// The simulated node's slice is what pkg/dra publishes: driver, pool and
// node name, one device per GPU from dra.Device with the node's model.
func TestTraceSliceIsDriverResources(t *testing.T) {
	n := TraceNode{Name: "openb-node-0002", CPU: 64000, MemMiB: 1024, GPUs: 2, Model: "V100M16"}
	s := traceSlice(n)
	if s.Spec.Driver != dra.DriverName || s.Spec.Pool.Name != n.Name || s.Spec.NodeName == nil || *s.Spec.NodeName != n.Name || s.Spec.Pool.ResourceSliceCount != 1 {
		t.Fatalf("slice spec %+v", s.Spec)
	}
	if len(s.Spec.Devices) != 2 {
		t.Fatalf("%d devices, want 2", len(s.Spec.Devices))
	}
	for i, d := range s.Spec.Devices {
		compute := d.Capacity[gpu.CapacityCompute].Value
		want := dra.Device(dra.GPU{Index: i, UUID: *d.Attributes[gpu.AttrUUID].StringValue, Model: n.Model, MemoryBytes: 16 << 30, Backend: "simulated", Minor: -1})
		if d.Name != want.Name || *d.Attributes[gpu.AttrModel].StringValue != "V100M16" || compute.Value() != gpu.MilliPerGPU || !*d.AllowMultipleAllocations {
			t.Errorf("device %d: %+v", i, d)
		}
	}
}

func TestServerPod(t *testing.T) {
	share := TracePod{Name: "openb-pod-0001", Task: gpushare.Task{CPU: 4000, Mem: 100, NumGPU: 1, GPUMilli: 250, Models: "V100M16|V100M32"}}
	whole := TracePod{Name: "openb-pod-0002", Task: gpushare.Task{CPU: 8000, Mem: 100, NumGPU: 2, GPUMilli: 1000}}
	cpu := TracePod{Name: "openb-pod-0003-tuned-7", Task: gpushare.Task{CPU: 2000, Mem: 100}}

	pod, claim, tmpl := serverPod(3, share, false)
	if pod.UID != "" || claim == nil || claim.UID != "" || tmpl != nil {
		t.Fatalf("pod uid %q, claim %v, template %v", pod.UID, claim, tmpl)
	}
	if *pod.Spec.ResourceClaims[0].ResourceClaimName != claim.Name || pod.Spec.Containers[0].Resources.Claims[0].Name != "gpu" {
		t.Errorf("pod does not use its claim: %+v", pod.Spec.ResourceClaims)
	}
	req := claim.Spec.Devices.Requests[0].Exactly
	milli := req.Capacity.Requests[gpu.CapacityCompute]
	if req.DeviceClassName != dra.DriverName || req.Count != 1 || milli.Value() != 250 ||
		req.Selectors[0].CEL.Expression != gpu.ModelSelector([]string{"V100M16", "V100M32"}) {
		t.Errorf("request %+v", req)
	}
	if pod.Spec.SecurityContext == nil || !*pod.Spec.SecurityContext.RunAsNonRoot || pod.Spec.Containers[0].SecurityContext.Capabilities.Drop[0] != "ALL" {
		t.Error("pod would not pass Pod Security restricted")
	}
	if pod.Spec.Containers[0].Resources.Requests.Cpu().MilliValue() != 4000 {
		t.Errorf("requests %v", pod.Spec.Containers[0].Resources.Requests)
	}

	pod, claim, tmpl = serverPod(4, share, true)
	if claim != nil || tmpl == nil || pod.Spec.ResourceClaims[0].ResourceClaimName != nil || *pod.Spec.ResourceClaims[0].ResourceClaimTemplateName != tmpl.Name {
		t.Fatalf("template mode: claim %v, template %v, pod claims %+v", claim, tmpl, pod.Spec.ResourceClaims)
	}
	if tmpl.Name != "gpu-1x250-v100m16-v100m32" || len(validation.IsDNS1123Subdomain(tmpl.Name)) > 0 {
		t.Errorf("template name %q", tmpl.Name)
	}
	_, _, t2 := serverPod(5, whole, true)
	if t2.Name != "gpu-2x1000" || t2.Spec.Spec.Devices.Requests[0].Exactly.Count != 2 || len(t2.Spec.Spec.Devices.Constraints) != 1 {
		t.Errorf("whole GPUs template %+v", t2)
	}

	pod, claim, tmpl = serverPod(6, cpu, true)
	if claim != nil || tmpl != nil || len(pod.Spec.ResourceClaims) != 0 {
		t.Errorf("CPU-only pod asks for GPUs: %+v", pod.Spec.ResourceClaims)
	}
	if !strings.HasPrefix(pod.Name, "p00006-") || len(validation.IsDNS1123Subdomain(pod.Name)) > 0 {
		t.Errorf("pod name %q", pod.Name)
	}
}

func TestAllocationAndDiff(t *testing.T) {
	work := []TracePod{
		{Task: gpushare.Task{NumGPU: 1, GPUMilli: 500}},
		{Task: gpushare.Task{NumGPU: 2, GPUMilli: 1000}},
		{Task: gpushare.Task{CPU: 1}},
		{Task: gpushare.Task{NumGPU: 1, GPUMilli: 1000}},
	}
	at100, atEnd := allocation(work, []string{"a:0", "", "b", "a:1"}, 2000)
	if at100 != 25 || atEnd != 75 {
		t.Errorf("allocation %.2f @100%%, %.2f at end; want 25, 75", at100, atEnd)
	}
	sim := []string{"a", "", "b", "a"}
	srv := []string{"a:0", "", "c", "a:1"}
	if d, f := placementDiff(sim, srv, false); d != 1 || f != 2 {
		t.Errorf("node diff %d first %d; want 1 at 2", d, f)
	}
	if d, f := placementDiff([]string{"a:0", "", "b", "a:0"}, srv, true); d != 2 || f != 2 {
		t.Errorf("node+GPU diff %d first %d; want 2 at 2", d, f)
	}
}

func TestUnschedulable(t *testing.T) {
	p := &v1.Pod{Status: v1.PodStatus{Conditions: []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionFalse, Reason: v1.PodReasonUnschedulable}}}}
	if !unschedulable(p) {
		t.Error("not seen as unschedulable")
	}
	p.Status.Conditions[0].Reason = "SchedulerError"
	if unschedulable(p) {
		t.Error("a scheduler error is not a decision")
	}
}

func TestCreationOrder(t *testing.T) {
	for _, tc := range []struct {
		name       string
		revs       []int64
		order      []int
		outOfOrder int
	}{
		{"in order", []int64{10, 11, 12}, []int{0, 1, 2}, 0},
		{"one swap", []int64{10, 12, 11}, []int{0, 2, 1}, 1},
		{"last first", []int64{11, 12, 10}, []int{2, 0, 1}, 1},
		{"reversed", []int64{12, 11, 10}, []int{2, 1, 0}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := creation{revs: tc.revs}
			if got := c.order(); !slices.Equal(got, tc.order) {
				t.Errorf("order %v, want %v", got, tc.order)
			}
			if got := c.outOfOrder(); got != tc.outOfOrder {
				t.Errorf("outOfOrder %d, want %d", got, tc.outOfOrder)
			}
		})
	}
}

// runInOrder feeds the pods in the given order and reports per arrival.
func TestRunInOrder(t *testing.T) {
	work := []TracePod{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	pods := []*v1.Pod{{}, {}, {}}
	var seen []string
	res, err := runInOrder([]int{2, 0, 1}, work, pods, func(w []TracePod, _ []*v1.Pod) (Result, error) {
		var r Result
		for _, p := range w {
			seen = append(seen, p.Name)
			r.Placements = append(r.Placements, "node-"+p.Name)
			r.Ties = append(r.Ties, 1)
		}
		return r, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []string{"c", "a", "b"}) {
		t.Errorf("ran %v, want c a b", seen)
	}
	if want := []string{"node-a", "node-b", "node-c"}; !slices.Equal(res.Placements, want) {
		t.Errorf("placements %v, want %v (by arrival)", res.Placements, want)
	}
	if _, err := runInOrder([]int{0}, work, pods, nil); err == nil {
		t.Error("an order of the wrong length was accepted")
	}
}

func TestPlacementDiff(t *testing.T) {
	for _, tc := range []struct {
		name        string
		a, b        []string
		withGPUs    bool
		diff, first int
	}{
		{"equal", []string{"n1:0", "n2"}, []string{"n1:0", "n2"}, true, 0, -1},
		{"CPU pod with and without colon", []string{"n1:", "n2:1"}, []string{"n1", "n2:1"}, true, 0, -1},
		{"other GPU", []string{"n1:0", "n2:1"}, []string{"n1:0", "n2:2"}, true, 1, 1},
		{"other GPU, nodes only", []string{"n1:0", "n2:1"}, []string{"n1:0", "n2:2"}, false, 0, -1},
		{"unscheduled", []string{"n1:0", ""}, []string{"", ""}, false, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			diff, first := placementDiff(tc.a, tc.b, tc.withGPUs)
			if diff != tc.diff || first != tc.first {
				t.Errorf("diff %d first %d, want %d %d", diff, first, tc.diff, tc.first)
			}
		})
	}
}

func TestAPIWrites(t *testing.T) {
	before := []byte(`# HELP apiserver_request_total x
apiserver_request_total{code="201",component="apiserver",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 10
apiserver_request_total{code="200",component="apiserver",group="",resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 5
`)
	after := []byte(`apiserver_request_total{code="201",component="apiserver",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 15
apiserver_request_total{code="409",component="apiserver",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 7
apiserver_request_total{code="200",component="apiserver",group="",resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 50
apiserver_request_total{code="200",component="apiserver",group="",resource="nodes",scope="resource",subresource="",verb="PUT",version="v1"} 6
`)
	got := apiWrites(before, after)
	want := []string{"total 19", "PATCH pods/status 7", "POST pods 6", "PUT nodes 6"}
	if !slices.Equal(got, want) {
		t.Fatalf("apiWrites = %q, want %q", got, want)
	}
}

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/strata-dev/strata/pkg/gpu"
	"github.com/strata-dev/strata/pkg/gpushare"
)

func testTrace() ([]TracePod, []TraceNode) {
	var pods []TracePod
	for i := range 40 {
		t := gpushare.Task{CPU: 1000, NumGPU: 1, GPUMilli: int64(100 + 20*i)}
		if i%5 == 0 {
			t = gpushare.Task{CPU: 4000}
		}
		pods = append(pods, TracePod{Name: fmt.Sprintf("pod-%02d", 39-i), Task: t})
	}
	var nodes []TraceNode
	for i := range 7 {
		nodes = append(nodes, TraceNode{Name: fmt.Sprintf("node-%d", 6-i), CPU: 32000, GPUs: 2, Model: "T4"})
	}
	return pods, nodes
}

// The paper's simulator: trace pods once each (shuffled) first, then copies
// appended until the next copy's per-GPU request would pass the target; the
// same seed gives the same sequence and node order.
func TestWorkloadFollowsReference(t *testing.T) {
	pods, nodes := testTrace()
	const gpuCap = 14 * gpu.MilliPerGPU
	work, rank := Workload(pods, nodes, gpuCap, 1.3, 42)
	work2, rank2 := Workload(pods, nodes, gpuCap, 1.3, 42)
	if !slices.Equal(work, work2) || fmt.Sprint(rank) != fmt.Sprint(rank2) {
		t.Fatal("same seed, different sequence")
	}
	first := map[string]bool{}
	var total int64
	for i, p := range work {
		total += p.Task.GPUTotal()
		tuned := strings.Contains(p.Name, "-tuned-")
		if (i < len(pods)) == tuned {
			t.Fatalf("position %d: %s; want the %d trace pods first, then copies", i, p.Name, len(pods))
		}
		if !tuned {
			first[p.Name] = true
		}
	}
	if len(first) != len(pods) || len(work) <= len(pods) {
		t.Errorf("%d distinct trace pods of %d, %d in all", len(first), len(pods), len(work))
	}
	if float64(total) > 1.3*gpuCap {
		t.Errorf("demand %d above target %.0f", total, 1.3*gpuCap)
	}
	var got []int
	for _, r := range rank {
		got = append(got, r)
	}
	slices.Sort(got)
	if len(got) != len(nodes) || got[0] != 0 || got[len(got)-1] != len(nodes)-1 {
		t.Errorf("rank %v is not a permutation of the nodes", rank)
	}
	if w3, _ := Workload(pods, nodes, gpuCap, 1.3, 43); slices.Equal(work, w3) {
		t.Error("seed 43 gave seed 42's sequence")
	}
	// Tune down: a target below the trace's demand removes pods.
	down, _ := Workload(pods, nodes, gpuCap, 0.5, 42)
	var d int64
	for _, p := range down {
		d += p.Task.GPUTotal()
	}
	if len(down) >= len(pods) || float64(d) > 0.5*gpuCap {
		t.Errorf("tune down: %d pods, demand %d", len(down), d)
	}
}

func TestPickHost(t *testing.T) {
	scores := []fwk.NodePluginScores{{Name: "a", TotalScore: 50}, {Name: "b", TotalScore: 70}, {Name: "c", TotalScore: 70}, {Name: "d", TotalScore: 70}}
	rank := map[string]int{"a": 0, "b": 3, "c": 1, "d": 2}
	for range 10 {
		if h := pickHost(scores, rank, nil); h != "c" {
			t.Fatalf("rank tie-break chose %s, want c (lowest rank among the best)", h)
		}
	}
	seen := map[string]int{}
	tie := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		seen[pickHost(scores, nil, tie)]++
	}
	if seen["a"] != 0 || seen["b"] < 60 || seen["c"] < 60 || seen["d"] < 60 {
		t.Errorf("random tie-break counts %v, want b, c, d about equally and never a", seen)
	}
}

func TestTraceSlice(t *testing.T) {
	s := traceSlice(TraceNode{Name: "n1", CPU: 96000, GPUs: 8, Model: "G2"})
	if s.Spec.NodeName == nil || *s.Spec.NodeName != "n1" || s.Spec.Pool.Name != "n1" || s.Spec.Driver != "gpu.strata.dev" || len(s.Spec.Devices) != 8 {
		t.Fatalf("slice %+v", s.Spec)
	}
	d := s.Spec.Devices[3]
	compute := d.Capacity["compute"].Value
	if d.Name != "gpu-3" || *d.Attributes["model"].StringValue != "G2" || compute.CmpInt64(1000) != 0 ||
		d.AllowMultipleAllocations == nil || !*d.AllowMultipleAllocations {
		t.Errorf("device %+v", d)
	}
}

func TestVersionObjects(t *testing.T) {
	client := fake.NewClientset()
	versionObjects(client)
	ctx := context.Background()
	a, _ := client.CoreV1().ConfigMaps("ns").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{})
	b, _ := client.CoreV1().ConfigMaps("ns").Update(ctx, a.DeepCopy(), metav1.UpdateOptions{})
	ra, _ := strconv.Atoi(a.ResourceVersion)
	rb, _ := strconv.Atoi(b.ResourceVersion)
	if ra == 0 || rb <= ra {
		t.Errorf("resourceVersions %q then %q, want increasing", a.ResourceVersion, b.ResourceVersion)
	}
}

package gpufrag

import (
	"context"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/pkg/gpu"
	"github.com/strata-dev/strata/pkg/gpushare"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpustate"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/nodeorder"
)

func ni(name string) fwk.NodeInfo {
	rl := v1.ResourceList{v1.ResourceCPU: resource.MustParse("32"), v1.ResourceMemory: resource.MustParse("64Gi"), v1.ResourcePods: resource.MustParse("110")}
	n := framework.NewNodeInfo()
	n.SetNode(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: v1.NodeStatus{Allocatable: rl, Capacity: rl}})
	return n
}

// A share should go to the node whose GPU is already broken, not break a
// whole GPU elsewhere; the window learns the distribution from the pods.
func TestScorePrefersBrokenGPU(t *testing.T) {
	store := gpustate.NewStore()
	store.AddNode("used", "T4", 2)
	store.AddNode("fresh", "T4", 2)
	_ = store.Update("used", func(n *gpushare.Node) error {
		return gpushare.Place(n, gpushare.Task{NumGPU: 1, GPUMilli: 500}, []int{0})
	})
	store.AddClaim(&resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"},
		Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{{Name: "gpu",
			Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: gpu.DriverName, AllocationMode: resourceapi.DeviceAllocationModeExactCount, Count: 1,
				Capacity: &resourceapi.CapacityRequirements{Requests: map[resourceapi.QualifiedName]resource.Quantity{"compute": resource.MustParse("500")}}}}}}},
	})
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: v1.PodSpec{
		Containers:     []v1.Container{{Name: "c"}},
		ResourceClaims: []v1.PodResourceClaim{{Name: "gpu", ResourceClaimName: ptr.To("c")}},
	}}
	p := NewWithOptions(Options{Source: store, Claims: store.Claims,
		Window: gpushare.NewWindow(10, gpushare.Dist{{Task: gpushare.Task{NumGPU: 1, GPUMilli: 1000}, P: 1}}, 1)})
	nodes := []fwk.NodeInfo{ni("used"), ni("fresh")}
	cs := framework.NewCycleState()
	if st := p.PreScore(context.Background(), cs, pod, nodes); !st.IsSuccess() {
		t.Fatal(st)
	}
	used, st := p.Score(context.Background(), cs, pod, nodes[0])
	if !st.IsSuccess() {
		t.Fatal(st)
	}
	fresh, _ := p.Score(context.Background(), cs, pod, nodes[1])
	if used <= fresh {
		t.Errorf("score used=%d fresh=%d: want the broken GPU filled", used, fresh)
	}
	if d := p.opts.Window.Dist(); len(d) != 2 {
		t.Errorf("window should hold the prior and the observed share: %v", d)
	}
}

func TestBreakTies(t *testing.T) {
	names := []string{"n0", "n1", "n2", "n3", "n4"}
	first := ""
	for _, n := range names[1:4] {
		if first == "" || nodeorder.Less(n, first) {
			first = n
		}
	}
	scores := fwk.NodeScoreList{{Name: "n0", Score: 40}, {Name: "n1", Score: 52}, {Name: "n2", Score: 52}, {Name: "n3", Score: 52}, {Name: "n4", Score: 51}}
	p := NewWithOptions(Options{TieBreak: TieBreakNodeOrder})
	if st := p.NormalizeScore(context.Background(), nil, nil, scores); !st.IsSuccess() {
		t.Fatal(st)
	}
	for _, s := range scores {
		want := map[string]int64{"n0": 40, "n4": 51}[s.Name]
		if s.Name == first {
			want = 52
		} else if want == 0 {
			want = 51
		}
		if s.Score != want {
			t.Errorf("%s: score %d, want %d (first in node order: %s)", s.Name, s.Score, want, first)
		}
	}
	// Reversing the list does not change the winner: the order is the
	// nodes', not the list's.
	rev := fwk.NodeScoreList{{Name: "n3", Score: 52}, {Name: "n2", Score: 52}, {Name: "n1", Score: 52}}
	BreakTies(rev)
	for _, s := range rev {
		if (s.Score == 52) != (s.Name == first) {
			t.Errorf("reversed: %v, want only %s at 52", rev, first)
		}
	}
	// All at 0: the first gains a point instead.
	zero := fwk.NodeScoreList{{Name: "n1"}, {Name: "n2"}, {Name: "n3"}}
	BreakTies(zero)
	for _, s := range zero {
		if (s.Score == 1) != (s.Name == first) || s.Score > 1 {
			t.Errorf("zeros: %v, want only %s at 1", zero, first)
		}
	}
	// TieBreak none leaves the scores alone.
	same := fwk.NodeScoreList{{Name: "n1", Score: 52}, {Name: "n2", Score: 52}}
	if st := NewWithOptions(Options{TieBreak: TieBreakNone}).NormalizeScore(context.Background(), nil, nil, same); !st.IsSuccess() || same[0].Score != 52 || same[1].Score != 52 {
		t.Errorf("tieBreak none changed %v", same)
	}
}

// firstInNodeOrder is the node nodeorder.Less puts first.
func firstInNodeOrder(names ...string) string {
	first := names[0]
	for _, n := range names[1:] {
		if nodeorder.Less(n, first) {
			first = n
		}
	}
	return first
}

func TestNormalizeScoreTieBreak(t *testing.T) {
	// Idle GPU capacity: busy 0 (both GPUs taken), nogpu 0 (no GPUs),
	// half 1000, idle1 and idle2 2000. Every node has 32 CPUs free.
	store := gpustate.NewStore()
	for _, n := range []string{"busy", "half", "idle1", "idle2"} {
		store.AddNode(n, "T4", 2)
	}
	store.AddNode("nogpu", "", 0)
	whole := gpushare.Task{NumGPU: 1, GPUMilli: 1000}
	_ = store.Update("busy", func(n *gpushare.Node) error { return gpushare.Place(n, whole, []int{0}) })
	_ = store.Update("busy", func(n *gpushare.Node) error { return gpushare.Place(n, whole, []int{1}) })
	_ = store.Update("half", func(n *gpushare.Node) error { return gpushare.Place(n, whole, []int{0}) })
	store.AddClaim(&resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "share", Namespace: "ns"},
		Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{{Name: "gpu",
			Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: gpu.DriverName, AllocationMode: resourceapi.DeviceAllocationModeExactCount, Count: 1,
				Capacity: &resourceapi.CapacityRequirements{Requests: map[resourceapi.QualifiedName]resource.Quantity{"compute": resource.MustParse("500")}}}}}}},
	})
	cpuPod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "cpu", Namespace: "ns"}, Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c"}}}}
	gpuPod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "gpu", Namespace: "ns"}, Spec: v1.PodSpec{
		Containers:     []v1.Container{{Name: "c"}},
		ResourceClaims: []v1.PodResourceClaim{{Name: "gpu", ResourceClaimName: ptr.To("share")}},
	}}
	nodes := []fwk.NodeInfo{ni("busy"), ni("half"), ni("idle1"), ni("idle2"), ni("nogpu")}

	for _, tc := range []struct {
		name     string
		tieBreak string
		pod      *v1.Pod
		tied     []string // at the highest score; the other nodes score 40
		hi       int64
		want     string // the node that keeps the highest score ("" = none changes)
	}{
		{name: "CPU pod: least idle GPU", pod: cpuPod, tied: []string{"half", "idle1", "idle2"}, hi: 50, want: "half"},
		{name: "CPU pod: a node with every GPU taken", pod: cpuPod, tied: []string{"idle1", "busy", "half"}, hi: 50, want: "busy"},
		{name: "CPU pod: equal idle GPU, node order", pod: cpuPod, tied: []string{"idle1", "idle2"}, hi: 50, want: firstInNodeOrder("idle1", "idle2")},
		{name: "CPU pod: no GPUs ties with all taken", pod: cpuPod, tied: []string{"busy", "nogpu", "idle2"}, hi: 50, want: firstInNodeOrder("busy", "nogpu")},
		{name: "CPU pod: every node at 0", pod: cpuPod, tied: []string{"busy", "half", "idle1", "idle2", "nogpu"}, hi: 0, want: firstInNodeOrder("busy", "nogpu")},
		{name: "GPU pod: node order only", pod: gpuPod, tied: []string{"half", "idle1", "idle2"}, hi: 50, want: firstInNodeOrder("half", "idle1", "idle2")},
		{name: "nodeOrder: CPU pod by node order", tieBreak: TieBreakNodeOrder, pod: cpuPod, tied: []string{"busy", "half", "idle1", "idle2"}, hi: 50, want: firstInNodeOrder("busy", "half", "idle1", "idle2")},
		{name: "none", tieBreak: TieBreakNone, pod: cpuPod, tied: []string{"half", "idle1"}, hi: 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewWithOptions(Options{Source: store, Claims: store.Claims, TieBreak: tc.tieBreak,
				Fragmenter: gpushare.NewFragmenter(gpushare.Dist{{Task: gpushare.Task{NumGPU: 1, GPUMilli: 1000}, P: 1}})})
			for _, reverse := range []bool{false, true} {
				cs := framework.NewCycleState()
				if st := p.PreScore(context.Background(), cs, tc.pod, nodes); !st.IsSuccess() {
					t.Fatal(st)
				}
				var scores fwk.NodeScoreList
				for _, n := range nodes {
					s := int64(40)
					if slices.Contains(tc.tied, n.Node().Name) {
						s = tc.hi
					}
					scores = append(scores, fwk.NodeScore{Name: n.Node().Name, Score: s})
				}
				if reverse {
					slices.Reverse(scores)
				}
				if st := p.NormalizeScore(context.Background(), cs, tc.pod, scores); !st.IsSuccess() {
					t.Fatal(st)
				}
				for _, s := range scores {
					want := int64(40)
					switch {
					case !slices.Contains(tc.tied, s.Name):
					case tc.want == "":
						want = tc.hi
					case s.Name == tc.want && tc.hi == 0:
						want = 1
					case s.Name == tc.want:
						want = tc.hi
					case tc.hi == 0:
						want = 0
					default:
						want = tc.hi - 1
					}
					if s.Score != want {
						t.Errorf("reverse=%v: %s scored %d, want %d (%v)", reverse, s.Name, s.Score, want, scores)
					}
				}
			}
		})
	}
}

func TestDecodeArgs(t *testing.T) {
	raw := func(s string) runtime.Object {
		return &runtime.Unknown{Raw: []byte(s), ContentType: runtime.ContentTypeJSON}
	}
	for _, tc := range []struct {
		name    string
		obj     runtime.Object
		want    Args
		wantErr string
	}{
		{name: "defaults", obj: nil, want: Args{WindowSize: 1000, PriorWeight: 100, TieBreak: TieBreakCPUPodsByIdleGPU}},
		{name: "empty object", obj: raw(`{}`), want: Args{WindowSize: 1000, PriorWeight: 100, TieBreak: TieBreakCPUPodsByIdleGPU}},
		{name: "cpuPodsByIdleGPU", obj: raw(`{"tieBreak":"cpuPodsByIdleGPU"}`), want: Args{WindowSize: 1000, PriorWeight: 100, TieBreak: TieBreakCPUPodsByIdleGPU}},
		{name: "nodeOrder", obj: raw(`{"tieBreak":"nodeOrder"}`), want: Args{WindowSize: 1000, PriorWeight: 100, TieBreak: TieBreakNodeOrder}},
		{name: "none", obj: raw(`{"tieBreak":"none","windowSize":50}`), want: Args{WindowSize: 50, PriorWeight: 100, TieBreak: TieBreakNone}},
		{name: "unknown tieBreak", obj: raw(`{"tieBreak":"lowest"}`), wantErr: `tieBreak "lowest": want one of cpuPodsByIdleGPU, nodeOrder, none`},
		{name: "empty window", obj: raw(`{"windowSize":0}`), wantErr: `windowSize 0: want at least 1`},
		{name: "negative prior weight", obj: raw(`{"priorWeight":-1}`), wantErr: `priorWeight -1: want 0 or more`},
		{name: "no prior", obj: raw(`{"priorWeight":0}`), want: Args{WindowSize: 1000, PriorWeight: 0, TieBreak: TieBreakCPUPodsByIdleGPU}},
		{name: "case matters", obj: raw(`{"tieBreak":"NodeOrder"}`), wantErr: `tieBreak "NodeOrder"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeArgs(tc.obj)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if d := DefaultArgs(); d.TieBreak != TieBreaks[0] {
		t.Errorf("default tieBreak %q, but TieBreaks lists %q first", d.TieBreak, TieBreaks[0])
	}
	// New refuses bad args before it needs the framework handle.
	if _, err := New(gpustate.NewSources())(context.Background(), raw(`{"tieBreak":"lowest"}`), nil); err == nil || !strings.Contains(err.Error(), "tieBreak") {
		t.Errorf("New accepted a bad tieBreak: %v", err)
	}
}

func TestPreferGPULess(t *testing.T) {
	nodes := map[string]gpushare.Node{
		"cpu-a":    {Name: "cpu-a"},
		"cpu-b":    {Name: "cpu-b"},
		"gpu-full": {Name: "gpu-full", GPUFree: []int64{0, 0}},
		"gpu-idle": {Name: "gpu-idle", GPUFree: []int64{1000, 1000}},
	}
	for _, tc := range []struct {
		name    string
		in      map[string]int64
		handled bool
		want    map[string]int64
	}{
		{"GPU-less nodes among the best stay tied, GPU nodes lose a point", map[string]int64{"cpu-a": 50, "cpu-b": 50, "gpu-full": 50, "gpu-idle": 50},
			true, map[string]int64{"cpu-a": 50, "cpu-b": 50, "gpu-full": 49, "gpu-idle": 49}},
		{"lower scores are left alone", map[string]int64{"cpu-a": 50, "gpu-idle": 40},
			true, map[string]int64{"cpu-a": 50, "gpu-idle": 40}},
		{"a GPU node scoring higher wins: nothing to do", map[string]int64{"cpu-a": 40, "gpu-full": 50},
			false, map[string]int64{"cpu-a": 40, "gpu-full": 50}},
		{"best score 0: GPU-less nodes gain a point", map[string]int64{"cpu-a": 0, "gpu-idle": 0},
			true, map[string]int64{"cpu-a": 1, "gpu-idle": 0}},
		{"no GPU-less node", map[string]int64{"gpu-full": 50, "gpu-idle": 50},
			false, map[string]int64{"gpu-full": 50, "gpu-idle": 50}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var scores fwk.NodeScoreList
			for n, s := range tc.in {
				scores = append(scores, fwk.NodeScore{Name: n, Score: s})
			}
			if got := preferGPULess(scores, nodes); got != tc.handled {
				t.Errorf("handled %v, want %v", got, tc.handled)
			}
			for _, s := range scores {
				if s.Score != tc.want[s.Name] {
					t.Errorf("%s: %d, want %d", s.Name, s.Score, tc.want[s.Name])
				}
			}
		})
	}
}

package gpufrag

import (
	"context"
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

	"github.com/strata-dev/strata/pkg/gpushare"
	"github.com/strata-dev/strata/pkg/scheduler/plugins/gpustate"
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
			Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: gpustate.DriverName, AllocationMode: resourceapi.DeviceAllocationModeExactCount, Count: 1,
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
		if first == "" || NodeOrderLess(n, first) {
			first = n
		}
	}
	scores := fwk.NodeScoreList{{Name: "n0", Score: 40}, {Name: "n1", Score: 52}, {Name: "n2", Score: 52}, {Name: "n3", Score: 52}, {Name: "n4", Score: 51}}
	p := NewWithOptions(Options{})
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
	if st := NewWithOptions(Options{NoTieBreak: true}).NormalizeScore(context.Background(), nil, nil, same); !st.IsSuccess() || same[0].Score != 52 || same[1].Score != 52 {
		t.Errorf("NoTieBreak changed %v", same)
	}
}

func TestArgsTieBreak(t *testing.T) {
	_, err := New(context.Background(), &runtime.Unknown{Raw: []byte(`{"tieBreak":"lowest"}`), ContentType: runtime.ContentTypeJSON}, nil)
	if err == nil || !strings.Contains(err.Error(), "tieBreak") {
		t.Errorf("bad tieBreak accepted: %v", err)
	}
}

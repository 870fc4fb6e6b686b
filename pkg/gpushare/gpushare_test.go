package gpushare

import (
	"math"
	"slices"
	"testing"
)

func node(model string, cpu int64, gpus ...int64) Node {
	return Node{Name: "n", Model: model, CPUFree: cpu, MemFree: 1 << 30, GPUFree: gpus}
}

func TestFits(t *testing.T) {
	cases := []struct {
		name string
		n    Node
		t    Task
		want bool
		ch   [][]int
	}{
		{"share on partly used", node("T4", 8000, 300, 1000), Task{CPU: 1000, NumGPU: 1, GPUMilli: 250}, true, [][]int{{0}, {1}}},
		{"share too big for used GPU", node("T4", 8000, 300, 1000), Task{CPU: 1000, NumGPU: 1, GPUMilli: 500}, true, [][]int{{1}}},
		{"whole GPU needs a free one", node("T4", 8000, 999, 999), Task{NumGPU: 1, GPUMilli: 1000}, false, nil},
		{"two whole GPUs, first free by index", node("T4", 8000, 1000, 500, 1000, 1000), Task{NumGPU: 2, GPUMilli: 1000}, true, [][]int{{0, 2}}},
		{"cpu short", node("T4", 500, 1000), Task{CPU: 1000, NumGPU: 1, GPUMilli: 1000}, false, [][]int{{0}}},
		{"model accepted", node("V100M32", 8000, 1000), Task{NumGPU: 1, GPUMilli: 1000, Models: "V100M16|V100M32"}, true, [][]int{{0}}},
		{"model refused", node("T4", 8000, 1000), Task{NumGPU: 1, GPUMilli: 1000, Models: "V100M16|V100M32"}, false, nil},
		{"cpu pod on cpu node", node("", 8000), Task{CPU: 1000}, true, nil},
		{"gpu pod on cpu node", node("", 8000), Task{NumGPU: 1, GPUMilli: 100}, false, nil},
		{"share needs its GPU memory", withMem(node("A100", 8000, 900, 900, 100), 10, 50, 80), Task{NumGPU: 1, GPUMilli: 100, GPUMem: 40}, true, [][]int{{1}, {2}}},
		{"compute left but no GPU memory", withMem(node("A100", 8000, 900, 900), 10, 30), Task{NumGPU: 1, GPUMilli: 100, GPUMem: 40}, false, nil},
		{"whole GPUs need the memory too", withMem(node("A100", 8000, 1000, 1000, 1000), 80, 20, 80), Task{NumGPU: 2, GPUMilli: 1000, GPUMem: 40}, true, [][]int{{0, 2}}},
		{"memory not modelled: compute decides", node("A100", 8000, 900), Task{NumGPU: 1, GPUMilli: 100, GPUMem: 40}, true, [][]int{{0}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Fits(c.n, c.t); got != c.want {
				t.Errorf("Fits = %v, want %v", got, c.want)
			}
			if got := Choices(c.n, c.t); !slices.EqualFunc(got, c.ch, slices.Equal) {
				t.Errorf("Choices = %v, want %v", got, c.ch)
			}
		})
	}
}

func withMem(n Node, mem ...int64) Node { n.GPUMemFree = mem; return n }

func TestTaskFrag(t *testing.T) {
	cases := []struct {
		name string
		n    Node
		t    Task
		want int64
	}{
		// Paper Fig. 3 style: a 0.5-GPU task cannot use GPUs with < 500 left.
		{"share: small leftovers are fragments", node("T4", 8000, 200, 700, 1000, 0), Task{CPU: 1000, NumGPU: 1, GPUMilli: 500}, 200},
		{"whole GPU: every partly used GPU is a fragment", node("T4", 8000, 200, 700, 1000, 0), Task{NumGPU: 1, GPUMilli: 1000}, 900},
		{"two GPUs but one free: all idle is fragment", node("T4", 8000, 200, 700, 1000, 0), Task{NumGPU: 2, GPUMilli: 1000}, 1900},
		{"cpu short: all idle is fragment", node("T4", 500, 1000, 1000), Task{CPU: 1000, NumGPU: 1, GPUMilli: 100}, 2000},
		{"wrong model: all idle is fragment", node("T4", 8000, 1000), Task{NumGPU: 1, GPUMilli: 100, Models: "A10"}, 1000},
		{"cpu-only task: all idle GPU is fragment", node("T4", 8000, 600, 1000), Task{CPU: 1000}, 1600},
		{"no GPU left: no fragment", node("T4", 8000, 0, 0), Task{NumGPU: 1, GPUMilli: 100}, 0},
		// The measure is the paper's: compute only, whatever memory is left.
		{"GPU memory is not part of it", withMem(node("A100", 8000, 200, 700), 0, 0), Task{NumGPU: 1, GPUMilli: 500, GPUMem: 40}, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := TaskFrag(c.n, c.t); got != c.want {
				t.Errorf("TaskFrag = %d, want %d", got, c.want)
			}
		})
	}
}

func TestDistFromCounts(t *testing.T) {
	a := Task{CPU: 1, NumGPU: 1, GPUMilli: 1000}
	b := Task{CPU: 2, NumGPU: 1, GPUMilli: 500}
	c := Task{CPU: 3, NumGPU: 2, GPUMilli: 1000}
	d := DistFromCounts(map[Task]float64{a: 60, b: 30, c: 10}, 0.85)
	if len(d) != 2 || d[0].Task != a || d[1].Task != b {
		t.Fatalf("dist = %v, want a, b", d)
	}
	if math.Abs(d[0].P-2.0/3) > 1e-9 || math.Abs(d[1].P-1.0/3) > 1e-9 {
		t.Errorf("renormalised P = %v", d)
	}
	if full := DistFromCounts(map[Task]float64{a: 1, b: 1, c: 1}, 1); len(full) != 3 || full[0].Task != c {
		t.Errorf("ties: larger type first, got %v", full)
	}
	if td := TypicalDist([]Task{{CPU: 1, Mem: 5}, {CPU: 1, Mem: 7}}, 1); len(td) != 1 || td[0].P != 1 {
		t.Errorf("memory must not split types: %v", td)
	}
}

func TestFGDScorePicksLeastFragmentingGPU(t *testing.T) {
	// Workload: half 0.5-GPU tasks, half whole GPUs.
	f := NewFragmenter(Dist{
		{Task: Task{NumGPU: 1, GPUMilli: 500}, P: 0.5},
		{Task: Task{NumGPU: 1, GPUMilli: 1000}, P: 0.5},
	})
	n := node("T4", 8000, 1000, 500, 700)
	// A 0.5 task: putting it on GPU 1 (500 left) empties that GPU and
	// leaves GPU 0 whole; on GPU 2 it would leave 200 nobody can use.
	s, g, ok := f.FGDScore(n, Task{NumGPU: 1, GPUMilli: 500})
	if !ok || !slices.Equal(g, []int{1}) {
		t.Fatalf("FGD chose %v (ok=%v), want GPU 1", g, ok)
	}
	if s <= 50 {
		t.Errorf("score %d: filling a fragment lowers fragmentation, want > 50", s)
	}
	if _, _, ok := f.FGDScore(n, Task{NumGPU: 2, GPUMilli: 1000}); ok {
		t.Error("two whole GPUs do not fit")
	}
	// Best fit picks the GPU with least left that fits, first on ties.
	if g := PickBestFit(n, Task{NumGPU: 1, GPUMilli: 300}); !slices.Equal(g, []int{1}) {
		t.Errorf("best fit = %v", g)
	}
	if g := PickFirst(n, Task{NumGPU: 1, GPUMilli: 600}); !slices.Equal(g, []int{0}) {
		t.Errorf("first fit = %v", g)
	}
	// The memo gives the same answer as the direct sum.
	if a, b := f.Frag(n), f.Dist.Frag(n); a != b {
		t.Errorf("memo %v != direct %v", a, b)
	}
}

func TestFGDPrefersNodeThatFragmentsLess(t *testing.T) {
	f := NewFragmenter(Dist{{Task: Task{NumGPU: 1, GPUMilli: 1000}, P: 1}})
	task := Task{NumGPU: 1, GPUMilli: 400}
	used := node("T4", 8000, 600, 1000)   // already broken GPU absorbs the share
	fresh := node("T4", 8000, 1000, 1000) // would break a whole GPU
	su, _, _ := f.FGDScore(used, task)
	sf, _, _ := f.FGDScore(fresh, task)
	if su <= sf {
		t.Errorf("score on used node %d should beat fresh node %d", su, sf)
	}
}

func TestBestFitScore(t *testing.T) {
	small := node("T4", 8000, 1000)
	big := node("T4", 64000, 1000, 1000, 1000, 1000)
	task := Task{CPU: 1000, NumGPU: 1, GPUMilli: 500}
	if BestFitScore(small, task) <= BestFitScore(big, task) {
		t.Error("best fit must prefer the node with less left")
	}
}

func TestPlaceRelease(t *testing.T) {
	n := node("T4", 8000, 1000, 1000)
	task := Task{CPU: 1000, Mem: 10, NumGPU: 1, GPUMilli: 300}
	if err := Place(&n, task, []int{1}); err != nil {
		t.Fatal(err)
	}
	if n.GPUFree[1] != 700 || n.CPUFree != 7000 {
		t.Fatalf("after place: %v", n)
	}
	if err := Place(&n, Task{NumGPU: 1, GPUMilli: 800}, []int{1}); err == nil {
		t.Error("overcommit must fail")
	}
	Release(&n, task, []int{1})
	if n.GPUFree[1] != 1000 || n.CPUFree != 8000 {
		t.Fatalf("after release: %v", n)
	}

	m := withMem(node("A100", 8000, 1000), 80)
	share := Task{NumGPU: 1, GPUMilli: 100, GPUMem: 50}
	if err := Place(&m, share, []int{0}); err != nil || m.GPUMemFree[0] != 30 {
		t.Fatalf("place with GPU memory: %v, %v", err, m)
	}
	if err := Place(&m, share, []int{0}); err == nil {
		t.Error("GPU memory overcommit must fail")
	}
	Release(&m, share, []int{0})
	if m.GPUMemFree[0] != 80 || m.GPUFree[0] != 1000 {
		t.Fatalf("after release with GPU memory: %v", m)
	}

	// A GPU whose memory is not counted stays so: giving memory back must
	// not overflow "no limit" into a negative amount.
	u := withMem(node("A100", 8000, 1000), NoGPUMemLimit)
	Release(&u, share, []int{0})
	if err := Place(&u, share, []int{0}); err != nil || u.GPUMemFree[0] != NoGPUMemLimit {
		t.Fatalf("GPU without a memory limit: %v, %v", err, u)
	}
}

func TestWindow(t *testing.T) {
	w := NewWindow(4, Dist{{Task: Task{NumGPU: 1, GPUMilli: 1000}, P: 1}}, 2)
	w.Coverage = 1
	for i := 0; i < 6; i++ {
		w.Observe(Task{CPU: 1, NumGPU: 1, GPUMilli: 250})
	}
	d := w.Dist()
	// 4 observations in the window + 2 prior.
	if len(d) != 2 || d[0].Task.GPUMilli != 250 || math.Abs(d[0].P-4.0/6) > 1e-9 {
		t.Errorf("window dist = %v", d)
	}
	if w.Fragmenter() != w.Fragmenter() {
		t.Error("fragmenter must be shared between refreshes")
	}
}

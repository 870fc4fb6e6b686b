package gpushare

import (
	"math"
	"slices"
	"sort"
	"sync"
)

// TypeFreq is one task type and its share of the workload (0..1).
type TypeFreq struct {
	Task Task
	P    float64
}

// Dist is the workload's distribution over task types ("typical pods" in the
// FGD paper's simulator). The probabilities sum to 1.
type Dist []TypeFreq

// typeKey drops what FGD's task types do not distinguish: host memory
// and GPU memory.
func typeKey(t Task) Task { t.Mem, t.GPUMem = 0, 0; return t }

// taskLess orders task types by CPU, GPU share, GPU count, then models; it
// breaks ties between equally popular types the way the paper's simulator
// does.
func taskLess(a, b Task) bool {
	if a.CPU != b.CPU {
		return a.CPU < b.CPU
	}
	if a.GPUMilli != b.GPUMilli {
		return a.GPUMilli < b.GPUMilli
	}
	if a.NumGPU != b.NumGPU {
		return a.NumGPU < b.NumGPU
	}
	return a.Models < b.Models
}

// DistFromCounts turns counts per task type into a Dist that keeps the most
// popular types until they cover `coverage` (0..1] of the weight, then
// renormalises; this is the paper's "typical pods" with its default
// popularity threshold of 95%.
func DistFromCounts(counts map[Task]float64, coverage float64) Dist {
	var total float64
	d := make(Dist, 0, len(counts))
	for t, c := range counts {
		if c <= 0 {
			continue
		}
		d = append(d, TypeFreq{Task: t, P: c})
		total += c
	}
	if total == 0 {
		return nil
	}
	// Most popular first; among equals the larger type first (the simulator
	// sorts ascending by (count, type) and reverses).
	sort.Slice(d, func(i, j int) bool {
		if d[i].P != d[j].P {
			return d[i].P > d[j].P
		}
		return taskLess(d[j].Task, d[i].Task)
	})
	if coverage <= 0 || coverage > 1 {
		coverage = 1
	}
	var cum float64
	n := 0
	for n < len(d) && cum < coverage*total {
		cum += d[n].P
		n++
	}
	d = d[:n]
	for i := range d {
		d[i].P /= cum
	}
	return d
}

// TypicalDist counts the tasks by type and calls DistFromCounts.
func TypicalDist(tasks []Task, coverage float64) Dist {
	counts := map[Task]float64{}
	for _, t := range tasks {
		counts[typeKey(t)]++
	}
	return DistFromCounts(counts, coverage)
}

// TaskFrag is the GPU capacity on the node that a task of type t cannot use
// (milli-GPU), the paper's F_n(m): all idle GPU capacity when the task cannot
// run on the node at all (wrong model, too little CPU, no GPU set that fits,
// or a task that asks no GPU), otherwise the idle capacity on GPUs that each
// have less left than the task asks per GPU. Memory is not part of it, as in
// the paper's simulator.
func TaskFrag(n Node, t Task) int64 {
	free := n.GPUFreeTotal()
	if t.GPUMilli == 0 || !ModelOK(n, t) || n.CPUFree < t.CPU || !gpuFits(n, t, false) {
		return free
	}
	var frag int64
	for _, f := range n.GPUFree {
		if f < t.GPUMilli {
			frag += f
		}
	}
	return frag
}

// Frag is the node's expected fragmentation over the distribution,
// F_n(M) = sum_m p_m F_n(m).
func (d Dist) Frag(n Node) float64 {
	var f float64
	for _, tf := range d {
		f += tf.P * float64(TaskFrag(n, tf.Task))
	}
	return f
}

// Fragmenter evaluates Dist.Frag with a memo keyed by the node state that
// the measure depends on (model, CPU left, multiset of GPU left). It is safe
// for concurrent use.
type Fragmenter struct {
	Dist Dist

	mu   sync.RWMutex
	memo map[fragKey]float64
}

// NewFragmenter returns a Fragmenter for the distribution.
func NewFragmenter(d Dist) *Fragmenter {
	return &Fragmenter{Dist: d, memo: map[fragKey]float64{}}
}

const memoGPUs = 8
const memoLimit = 1 << 20

type fragKey struct {
	model string
	cpu   int64
	n     int
	gpu   [memoGPUs]int64
}

// Frag returns Dist.Frag(n), memoised.
func (f *Fragmenter) Frag(n Node) float64 {
	if len(n.GPUFree) > memoGPUs {
		return f.Dist.Frag(n)
	}
	k := fragKey{model: n.Model, cpu: n.CPUFree, n: len(n.GPUFree)}
	copy(k.gpu[:], n.GPUFree)
	slices.Sort(k.gpu[:k.n])
	f.mu.RLock()
	v, ok := f.memo[k]
	f.mu.RUnlock()
	if ok {
		return v
	}
	v = f.Dist.Frag(n)
	f.mu.Lock()
	if len(f.memo) >= memoLimit {
		f.memo = map[fragKey]float64{}
	}
	f.memo[k] = v
	f.mu.Unlock()
	return v
}

// MaxScore is the highest score a placement can get (kube-scheduler's
// MaxNodeScore).
const MaxScore = 100

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// FGDScore scores placing t on n the way the paper's FGDScore plugin does:
// the decrease of the node's expected fragmentation, squashed as
// sigmoid(decrease/1000)*100 and truncated to an integer, so 50 means
// "unchanged" and higher is better. For a share it tries every GPU that
// fits and returns the best one (the lowest index among equal scores); for
// whole GPUs the first fully free ones. ok is false if t does not fit.
func (f *Fragmenter) FGDScore(n Node, t Task) (score int64, gpus []int, ok bool) {
	if !FitsGPU(n, t) || n.CPUFree < t.CPU {
		return 0, nil, false
	}
	before := f.Frag(n)
	best := int64(-1)
	for _, c := range Choices(n, t) {
		after := n.Clone()
		after.CPUFree -= t.CPU
		for _, g := range c {
			after.GPUFree[g] -= t.GPUMilli // Frag reads compute only
		}
		s := int64(sigmoid((before-f.Frag(after))/1000) * MaxScore)
		if s > best {
			best, gpus = s, c
		}
	}
	if t.NumGPU == 0 {
		after := n
		after.CPUFree -= t.CPU
		best = int64(sigmoid((before-f.Frag(after))/1000) * MaxScore)
	}
	return best, gpus, true
}

// Reference maxima the paper's best-fit uses to normalise free resources.
const (
	MaxSpecCPU = 128000 // milli-CPU
	MaxSpecGPU = 8000   // milli-GPU
)

// BestFitScore is the paper's best-fit baseline: 100 * (1 - (0.5 * CPU left
// after placement / 128 cores + 0.5 * GPU left after placement / 8 GPUs)),
// truncated; the plugin min-max normalises it over the nodes. The node with
// the least left wins.
func BestFitScore(n Node, t Task) int64 {
	cpu := float64(n.CPUFree-t.CPU) / MaxSpecCPU
	gpu := float64(n.GPUFreeTotal()-t.GPUTotal()) / MaxSpecGPU
	return int64((1 - (0.5*cpu + 0.5*gpu)) * MaxScore)
}

// Picker chooses the GPUs for a task on a node it fits; nil if none.
type Picker func(n Node, t Task) []int

// PickFirst takes the lowest-index GPUs that fit: what upstream DRA's
// structured allocator does (first device in ResourceSlice order with
// enough capacity left).
func PickFirst(n Node, t Task) []int {
	c := Choices(n, t)
	if len(c) == 0 {
		return nil
	}
	return c[0]
}

// PickBestFit gives a share the GPU with the least left that fits (the
// paper's default GPU selection, used with its best-fit baseline), and
// whole GPUs the first fully free ones.
func PickBestFit(n Node, t Task) []int {
	c := Choices(n, t)
	if len(c) == 0 {
		return nil
	}
	best := c[0]
	for _, x := range c[1:] {
		if n.GPUFree[x[0]] < n.GPUFree[best[0]] {
			best = x
		}
	}
	return best
}

// PickFGD chooses the GPU set FGDScore chooses.
func (f *Fragmenter) PickFGD(n Node, t Task) []int {
	_, g, _ := f.FGDScore(n, t)
	return g
}

// Package gpushare is the GPU-state model behind Strata's GPU scheduling
// plugins: a node's GPUs as milli-GPU left per device, whether a task fits,
// and the fragmentation measure of FGD (Weng et al., "Beware of
// Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation
// Gradient Descent", USENIX ATC'23).
//
// The package is pure arithmetic: of Kubernetes it knows only the GPU
// contract (pkg/gpu, for the capacity of one GPU), so the same code serves
// the kube-scheduler plugins (which fill it from the DRA view of
// ResourceSlices and allocated ResourceClaims) and the trace replay.
package gpushare

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/strata-dev/strata/pkg/gpu"
)

// Node is one node's free resources. GPUFree and GPUMemFree are indexed by
// GPU index (the device `gpu-<index>` of the node's ResourceSlice).
type Node struct {
	Name    string
	Model   string  // GPU model of the node, "" for a node without GPUs
	CPUFree int64   // milli-CPU
	MemFree int64   // any unit, as long as tasks use the same one
	GPUFree []int64 // milli-GPU left on each GPU
	// GPUMemFree is the GPU memory left on each GPU (bytes), nil where GPU
	// memory is not modelled (the trace replay: the trace has none); a GPU
	// without a memory capacity has NoGPUMemLimit.
	GPUMemFree []int64
	// GPUMemMax is the memory capacity of the node's largest GPU (bytes),
	// 0 where unknown; it tells "never fits here" from "not now".
	GPUMemMax int64
}

// NoGPUMemLimit is the GPUMemFree of a GPU whose memory is not counted.
const NoGPUMemLimit = math.MaxInt64

// AddToGPU gives GPU i milli-GPU of compute and mem bytes of GPU memory
// back (negative values take them). A GPU with NoGPUMemLimit keeps it.
func (n *Node) AddToGPU(i int, milli, mem int64) {
	if i < 0 || i >= len(n.GPUFree) {
		return
	}
	n.GPUFree[i] += milli
	if i < len(n.GPUMemFree) && n.GPUMemFree[i] != NoGPUMemLimit {
		n.GPUMemFree[i] += mem
	}
}

// Clone returns a deep copy.
func (n Node) Clone() Node {
	n.GPUFree = slices.Clone(n.GPUFree)
	n.GPUMemFree = slices.Clone(n.GPUMemFree)
	return n
}

// GPUFreeTotal is the milli-GPU left on the node summed over its GPUs.
func (n Node) GPUFreeTotal() int64 {
	var t int64
	for _, f := range n.GPUFree {
		t += f
	}
	return t
}

// FullyFree counts the GPUs nobody uses.
func (n Node) FullyFree() int {
	c := 0
	for _, f := range n.GPUFree {
		if f >= gpu.MilliPerGPU {
			c++
		}
	}
	return c
}

func (n Node) String() string {
	if n.GPUMemFree != nil {
		return fmt.Sprintf("%s<%s cpu=%d mem=%d gpu=%v gpumem=%v>", n.Name, n.Model, n.CPUFree, n.MemFree, n.GPUFree, n.GPUMemFree)
	}
	return fmt.Sprintf("%s<%s cpu=%d mem=%d gpu=%v>", n.Name, n.Model, n.CPUFree, n.MemFree, n.GPUFree)
}

// Task is what one pod asks for. A share asks NumGPU=1 and GPUMilli<1000;
// whole GPUs ask NumGPU=N and GPUMilli=1000 (each taken whole); a CPU-only
// pod asks NumGPU=0. GPUMem is the GPU memory it reserves on each of its
// GPUs (bytes, 0 = none). Models, if not empty, lists the GPU models the
// task accepts.
type Task struct {
	CPU      int64
	Mem      int64
	NumGPU   int
	GPUMilli int64
	GPUMem   int64
	Models   string // "|"-separated accepted models, "" = any; a string keeps Task comparable
}

// IsShare reports whether the task takes a part of one GPU.
func (t Task) IsShare() bool { return t.NumGPU == 1 && t.GPUMilli < gpu.MilliPerGPU }

// GPUTotal is the milli-GPU the task holds in all.
func (t Task) GPUTotal() int64 { return int64(t.NumGPU) * t.GPUMilli }

func (t Task) String() string {
	s := fmt.Sprintf("<cpu=%d gpu=%dx%dm", t.CPU, t.NumGPU, t.GPUMilli)
	if t.GPUMem > 0 {
		s += fmt.Sprintf(" gpumem=%d", t.GPUMem)
	}
	if t.Models != "" {
		s += " " + t.Models
	}
	return s + ">"
}

// ModelOK reports whether the node's GPU model is one the task accepts. A
// node without GPUs is acceptable only to a task without a model list.
func ModelOK(n Node, t Task) bool {
	if t.Models == "" {
		return true
	}
	if n.Model == "" {
		return false
	}
	any := false
	for m := range strings.SplitSeq(t.Models, "|") {
		if m == "" {
			continue
		}
		any = true
		if m == n.Model {
			return true
		}
	}
	return !any
}

// gpuFits reports whether the node's GPUs can hold the task's GPU part: a
// share needs one GPU with enough left, whole GPUs need that many GPUs with
// everything left. withMem also asks each GPU for the task's GPU memory.
func gpuFits(n Node, t Task, withMem bool) bool {
	if t.NumGPU == 0 {
		return true
	}
	need := t.NumGPU
	for i := range n.GPUFree {
		if gpuHolds(n, i, t, withMem) {
			need--
			if need == 0 {
				return true
			}
		}
	}
	return false
}

// gpuHolds reports whether GPU i has the task's per-GPU compute left, and
// (withMem, where memory is modelled) its GPU memory.
func gpuHolds(n Node, i int, t Task, withMem bool) bool {
	if n.GPUFree[i] < t.GPUMilli {
		return false
	}
	return !withMem || t.GPUMem == 0 || n.GPUMemFree == nil || (i < len(n.GPUMemFree) && n.GPUMemFree[i] >= t.GPUMem)
}

// FitsGPU reports whether the task's GPU part (model, devices with enough
// compute and GPU memory) fits.
func FitsGPU(n Node, t Task) bool {
	if t.NumGPU > 0 && !ModelOK(n, t) {
		return false
	}
	return gpuFits(n, t, true)
}

// Fits reports whether the task fits the node in CPU, memory and GPU.
func Fits(n Node, t Task) bool {
	return n.CPUFree >= t.CPU && n.MemFree >= t.Mem && FitsGPU(n, t)
}

// Choices lists the GPU index sets the task could be given on the node: for
// a share, every GPU with enough left; for whole GPUs, the first NumGPU
// fully free GPUs by index with the memory asked (any set of fully free
// GPUs leaves the node's compute in the same state, so one choice stands
// for all).
func Choices(n Node, t Task) [][]int {
	if t.NumGPU == 0 || !FitsGPU(n, t) {
		return nil
	}
	if t.IsShare() {
		var out [][]int
		for i := range n.GPUFree {
			if gpuHolds(n, i, t, true) {
				out = append(out, []int{i})
			}
		}
		return out
	}
	ids := make([]int, 0, t.NumGPU)
	for i := range n.GPUFree {
		if gpuHolds(n, i, t, true) && len(ids) < t.NumGPU {
			ids = append(ids, i)
		}
	}
	return [][]int{ids}
}

// Place takes the task's resources from the node, on the given GPUs.
func Place(n *Node, t Task, gpus []int) error {
	if len(gpus) != t.NumGPU {
		return fmt.Errorf("task %s needs %d GPUs, got %v", t, t.NumGPU, gpus)
	}
	for _, g := range gpus {
		if g < 0 || g >= len(n.GPUFree) || !gpuHolds(*n, g, t, true) {
			return fmt.Errorf("task %s does not fit GPU %d of %s", t, g, n)
		}
	}
	n.CPUFree -= t.CPU
	n.MemFree -= t.Mem
	for _, g := range gpus {
		n.AddToGPU(g, -t.GPUMilli, -t.GPUMem)
	}
	return nil
}

// Release gives the task's resources back (the inverse of Place).
func Release(n *Node, t Task, gpus []int) {
	n.CPUFree += t.CPU
	n.MemFree += t.Mem
	for _, g := range gpus {
		n.AddToGPU(g, t.GPUMilli, t.GPUMem)
	}
}

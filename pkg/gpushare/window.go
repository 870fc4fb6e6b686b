package gpushare

import "sync"

// Window is the product's estimate of the workload distribution: the last
// Size task types observed (pods the scheduler was asked to place), plus a
// prior worth PriorWeight observations so that a young cluster does not
// chase its first few pods. The paper computes the distribution once from
// the trace; a running scheduler has no trace and learns it instead.
//
// The Fragmenter (and its memo) is rebuilt only every Refresh observations,
// because every new distribution invalidates the memo.
type Window struct {
	Size        int
	Prior       Dist
	PriorWeight float64
	Refresh     int
	Coverage    float64 // popularity cut, as DistFromCounts; 0.95 in the paper

	mu    sync.Mutex
	ring  []Task
	next  int
	since int
	frag  *Fragmenter
}

// NewWindow returns a Window with the given size (at least one task) and
// prior. Callers bring their own size: the plugin's default is
// gpufrag.DefaultArgs.
func NewWindow(size int, prior Dist, priorWeight float64) *Window {
	size = max(size, 1)
	return &Window{Size: size, Prior: prior, PriorWeight: priorWeight, Refresh: 50, Coverage: 0.95}
}

// Observe records one task.
func (w *Window) Observe(t Task) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t = typeKey(t)
	if len(w.ring) < w.Size {
		w.ring = append(w.ring, t)
	} else {
		w.ring[w.next] = t
		w.next = (w.next + 1) % w.Size
	}
	w.since++
	if w.Refresh <= 0 || w.since >= w.Refresh {
		w.frag = nil
	}
}

// Dist returns the current distribution (window counts plus prior).
func (w *Window) Dist() Dist {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.distLocked()
}

func (w *Window) distLocked() Dist {
	counts := map[Task]float64{}
	for _, t := range w.ring {
		counts[t]++
	}
	for _, tf := range w.Prior {
		counts[typeKey(tf.Task)] += tf.P * w.PriorWeight
	}
	return DistFromCounts(counts, w.Coverage)
}

// Fragmenter returns a Fragmenter for the current distribution, shared
// until Refresh more tasks have been observed.
func (w *Window) Fragmenter() *Fragmenter {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.frag == nil {
		w.frag = NewFragmenter(w.distLocked())
		w.since = 0
	}
	return w.frag
}

// DefaultPrior is the prior of a fresh Strata scheduler: whole GPUs and
// common shares, each with a modest CPU request. It only matters until the
// window has seen a few hundred pods.
func DefaultPrior() Dist {
	return Dist{
		{Task: Task{CPU: 8000, NumGPU: 1, GPUMilli: 1000}, P: 0.45},
		{Task: Task{CPU: 4000, NumGPU: 1, GPUMilli: 500}, P: 0.15},
		{Task: Task{CPU: 4000, NumGPU: 1, GPUMilli: 250}, P: 0.15},
		{Task: Task{CPU: 16000, NumGPU: 2, GPUMilli: 1000}, P: 0.05},
		{Task: Task{CPU: 32000, NumGPU: 4, GPUMilli: 1000}, P: 0.05},
		{Task: Task{CPU: 64000, NumGPU: 8, GPUMilli: 1000}, P: 0.05},
		{Task: Task{CPU: 4000}, P: 0.10},
	}
}

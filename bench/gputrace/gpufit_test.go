package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/strata-dev/strata/pkg/gpu"
	"github.com/strata-dev/strata/pkg/gpushare"
)

// TestGPUFitChangesNoPlacement replays a mixed workload past the cluster's
// capacity through DynamicResources with and without StrataGPUFit in front
// of it. The filter may only turn away nodes the allocator would turn away
// too, so every pod must land on the same node and GPUs, and the same pods
// must stay unschedulable (there must be some, or the filter had nothing
// to reject). It fails if the filter asks 200 milli-GPU or 3Gi of GPU
// memory more than the request.
func TestGPUFitChangesNoPlacement(t *testing.T) {
	var nodes []TraceNode
	for i, gpus := range []int{2, 4, 8, 1, 4, 8} {
		model := "A100"
		if i%3 == 2 {
			model = "V100"
		}
		nodes = append(nodes, TraceNode{Name: fmt.Sprintf("node-%d", i), CPU: 64000, MemMiB: 256 << 10, GPUs: gpus, Model: model})
	}
	var pods []TracePod
	for i := range 60 {
		// Mostly shares of 300-900 milli-GPU, some with GPU memory or a
		// model, some whole GPUs, pairs and CPU-only pods.
		task := gpushare.Task{CPU: 2000, Mem: 4096, NumGPU: 1, GPUMilli: int64(300 + 100*(i%7))}
		switch {
		case i%9 == 0:
			task.NumGPU, task.GPUMilli = 2, gpu.MilliPerGPU
		case i%4 == 0:
			task.GPUMilli = gpu.MilliPerGPU
		case i%11 == 0:
			task = gpushare.Task{CPU: 8000, Mem: 8192}
		case i%3 == 0:
			// GPU memory (of 16Gi per GPU) as well as compute.
			task.GPUMem = int64(6+2*(i%5)) << 30
		case i%7 == 1:
			task.Models = "V100" // a selector StrataGPUFit leaves to DynamicResources
		}
		pods = append(pods, TracePod{Name: fmt.Sprintf("pod-%02d", i), Task: task})
	}
	policy, ok := policyByName("product")
	if !ok {
		t.Fatal("no product policy")
	}
	rc := ReplayConfig{Nodes: nodes, Pods: pods, Seed: 42, Tune: 1.3, Policy: policy, Mode: "dra", TieBreak: "random"}
	with, err := ReplayDRA(context.Background(), rc)
	if err != nil {
		t.Fatal(err)
	}
	rc.NoGPUFit = true
	without, err := ReplayDRA(context.Background(), rc)
	if err != nil {
		t.Fatal(err)
	}
	if with.Scheduled == with.Pods {
		t.Fatalf("all %d pods scheduled: the workload does not fill the cluster", with.Pods)
	}
	for i := range without.Placements {
		if with.Placements[i] != without.Placements[i] {
			t.Errorf("arrival %d: %q with StrataGPUFit, %q without", i, with.Placements[i], without.Placements[i])
		}
	}
	t.Logf("with StrataGPUFit: %d of %d pods scheduled, GPU allocation %.2f%%; without: %d, %.2f%%",
		with.Scheduled, with.Pods, with.AllocAtEnd, without.Scheduled, without.AllocAtEnd)
}

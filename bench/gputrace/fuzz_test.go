package main

import (
	"regexp"
	"strings"
	"testing"
)

// faultAt is how a refused trace file names its fault: the file, then a
// line (and where known a column).
var faultAt = regexp.MustCompile(`^fuzz\.csv`)

// FuzzParsePods: any pod file is refused with an error that names the
// file, or gives pods within the trace's bounds.
func FuzzParsePods(f *testing.F) {
	f.Add("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\np1,1000,2048,1,500,\np2,0,0,2,0,V100M16|V100M32\n")
	f.Add("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np1,1,1,0,0\n")
	f.Add("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np1,1,1,1,0\n")
	f.Add("name,cpu_milli\np1,1\n")
	f.Add("name,cpu_milli,memory_mib,num_gpu,gpu_milli\n\"p1,1,1,0,0\n")
	f.Fuzz(func(t *testing.T, file string) {
		pods, err := ParsePods(strings.NewReader(file), "fuzz.csv")
		if err != nil {
			if !faultAt.MatchString(err.Error()) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, p := range pods {
			if p.Task.NumGPU < 0 || p.Task.NumGPU > 64 || p.Task.GPUMilli < 0 || p.Task.GPUMilli > 1000 || (p.Task.NumGPU == 0) != (p.Task.GPUMilli == 0) {
				t.Fatalf("pod %+v out of bounds", p)
			}
		}
	})
}

// FuzzParseNodes: the same for node files.
func FuzzParseNodes(f *testing.F) {
	f.Add("sn,cpu_milli,memory_mib,gpu,model\nn1,96000,786432,8,V100M32\nn2,64000,262144,0,\n")
	f.Add("sn,cpu_milli,memory_mib,gpu,model\nn1,1,1,2,\n")
	f.Fuzz(func(t *testing.T, file string) {
		nodes, err := ParseNodes(strings.NewReader(file), "fuzz.csv")
		if err != nil {
			if !faultAt.MatchString(err.Error()) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, n := range nodes {
			if n.Name == "" || n.GPUs < 0 || n.GPUs > 64 || (n.GPUs > 0 && n.Model == "") {
				t.Fatalf("node %+v out of bounds", n)
			}
		}
	})
}

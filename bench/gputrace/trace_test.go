package main

import (
	"strings"
	"testing"
)

func TestParseMalformed(t *testing.T) {
	cases := []struct {
		name string
		pods bool
		in   string
		want string
	}{
		{"bad number", false, "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2,P100\nn1,64k,262144,2,P100\n",
			`nodes.csv:3: column cpu_milli: bad number "64k"`},
		{"wrong column count", false, "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2\n",
			"nodes.csv:2: 4 columns, header has 5"},
		{"unknown header", false, "sn,cpu_milli,memory_mib,gpus,model\n",
			`nodes.csv:1: unknown column "gpus" in header`},
		{"missing column", true, "name,cpu_milli,memory_mib,num_gpu\n",
			`pods.csv:1: header lacks column "gpu_milli"`},
		{"pod bad number", true, "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,10,1,500\np1,1000,10,1,x\n",
			`pods.csv:3: column gpu_milli: bad number "x"`},
		{"pod share out of range", true, "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,10,1,1500\n",
			"pods.csv:2: column gpu_milli: 1500 out of range"},
		{"pod wrong column count", true, "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\np0,1,2,1,500,,extra\n",
			"pods.csv:2: 7 columns, header has 6"},
		{"gpu node without model", false, "sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,2,\n",
			"nodes.csv:2: column model: empty"},
		{"empty", true, "", "pods.csv:1: empty file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if c.pods {
				_, err = ParsePods(strings.NewReader(c.in), "pods.csv")
			} else {
				_, err = ParseNodes(strings.NewReader(c.in), "nodes.csv")
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestParseGood(t *testing.T) {
	pods, err := ParsePods(strings.NewReader(
		"name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"+
			"a,12000,16384,1,460,,LS,Running,0,1,0\n"+
			"b,64000,100,8,1000,V100M16|V100M32,BE,Running,0,1,0\n"+
			"c,4000,100,0,0,,BE,Running,0,1,0\n"), "pods.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 3 || pods[0].Task.GPUMilli != 460 || pods[1].Task.NumGPU != 8 || pods[1].Task.GPUMilli != 1000 ||
		pods[1].Task.Models != "V100M16|V100M32" || pods[2].Task.GPUTotal() != 0 {
		t.Errorf("pods = %+v", pods)
	}
}

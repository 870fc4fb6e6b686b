package gpupreempt

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/pkg/gpushare"
)

func TestSelectVictims(t *testing.T) {
	t0 := time.Unix(1000, 0)
	v := func(name string, prio int32, age time.Duration, held map[int]int64) victim {
		return victim{pod: &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(t0.Add(-age))},
			Spec: v1.PodSpec{Priority: ptr.To(prio)}}, held: held}
	}
	full := gpushare.Node{GPUFree: []int64{0, 0}}
	tests := []struct {
		name   string
		node   gpushare.Node
		task   gpushare.Task
		cands  []victim
		want   []string
		wantOK bool
	}{
		{"one whole GPU from the lowest priority", full, gpushare.Task{NumGPU: 1, GPUMilli: 1000},
			[]victim{v("a", 0, time.Hour, map[int]int64{0: 1000}), v("b", -10, time.Hour, map[int]int64{1: 1000})}, []string{"b"}, true},
		{"same priority: the newest goes", full, gpushare.Task{NumGPU: 1, GPUMilli: 1000},
			[]victim{v("old", 0, time.Hour, map[int]int64{0: 1000}), v("new", 0, time.Minute, map[int]int64{1: 1000})}, []string{"new"}, true},
		{"shares: only as many as needed", gpushare.Node{GPUFree: []int64{0}}, gpushare.Task{NumGPU: 1, GPUMilli: 500},
			[]victim{v("s1", 0, 4*time.Minute, map[int]int64{0: 250}), v("s2", 0, 3*time.Minute, map[int]int64{0: 250}),
				v("s3", 0, 2*time.Minute, map[int]int64{0: 250}), v("s4", 0, time.Minute, map[int]int64{0: 250})}, []string{"s4", "s3"}, true},
		{"reprieve a victim that did not help", gpushare.Node{GPUFree: []int64{0, 0}}, gpushare.Task{NumGPU: 1, GPUMilli: 1000},
			[]victim{v("small", -10, time.Hour, map[int]int64{0: 500}), v("whole", 0, time.Hour, map[int]int64{1: 1000})}, []string{"whole"}, true},
		{"not enough even with all", full, gpushare.Task{NumGPU: 2, GPUMilli: 1000},
			[]victim{v("a", 0, time.Hour, map[int]int64{0: 1000})}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := selectVictims(tt.node, tt.task, tt.cands)
			var names []string
			for _, g := range got {
				names = append(names, g.pod.Name)
			}
			if ok != tt.wantOK || len(names) != len(tt.want) {
				t.Fatalf("victims %v ok %v, want %v ok %v", names, ok, tt.want, tt.wantOK)
			}
			for i := range names {
				if names[i] != tt.want[i] {
					t.Fatalf("victims %v, want %v", names, tt.want)
				}
			}
		})
	}
}

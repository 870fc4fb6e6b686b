package gpubestfit

import (
	"testing"

	fwk "k8s.io/kube-scheduler/framework"
)

func TestNormalize(t *testing.T) {
	cases := []struct {
		in, want []int64
	}{
		{[]int64{10, 20, 30}, []int64{0, 50, 100}},
		{[]int64{7, 7}, []int64{0, 0}},
		{[]int64{-5, 95}, []int64{0, 100}},
		{nil, nil},
	}
	for _, c := range cases {
		var l fwk.NodeScoreList
		for _, s := range c.in {
			l = append(l, fwk.NodeScore{Score: s})
		}
		Normalize(l)
		for i := range l {
			if l[i].Score != c.want[i] {
				t.Errorf("Normalize(%v) = %v, want %v", c.in, l, c.want)
				break
			}
		}
	}
}

package nodeorder

import (
	"fmt"
	"slices"
	"testing"

	fwk "k8s.io/kube-scheduler/framework"
)

func TestRank(t *testing.T) {
	names := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("node-%03d", i))
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		nodes []string
	}{
		{"one node", names(1)},
		{"three nodes", names(3)},
		{"exactly 101 nodes", names(101)},
		{"more nodes than scores", names(250)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scores := make(fwk.NodeScoreList, len(tc.nodes))
			for i, n := range tc.nodes {
				scores[i] = fwk.NodeScore{Name: n, Score: 42}
			}
			Rank(scores)
			sorted := slices.Clone(tc.nodes)
			slices.SortFunc(sorted, func(a, b string) int {
				if Less(a, b) {
					return -1
				}
				return 1
			})
			got := map[string]int64{}
			for _, s := range scores {
				got[s.Name] = s.Score
			}
			for rank, n := range sorted {
				want := max(int64(0), 100-int64(rank))
				if got[n] != want {
					t.Errorf("%s (rank %d): score %d, want %d", n, rank, got[n], want)
				}
			}
		})
	}
}

// The order must not depend on the order the scores arrive in (the
// parallel Filter's finishing order).
func TestRankIgnoresInputOrder(t *testing.T) {
	a := fwk.NodeScoreList{{Name: "x"}, {Name: "y"}, {Name: "z"}}
	b := fwk.NodeScoreList{{Name: "z"}, {Name: "x"}, {Name: "y"}}
	Rank(a)
	Rank(b)
	byName := func(l fwk.NodeScoreList) map[string]int64 {
		m := map[string]int64{}
		for _, s := range l {
			m[s.Name] = s.Score
		}
		return m
	}
	ma, mb := byName(a), byName(b)
	for n := range ma {
		if ma[n] != mb[n] {
			t.Errorf("%s: %d in one order, %d in another", n, ma[n], mb[n])
		}
	}
}

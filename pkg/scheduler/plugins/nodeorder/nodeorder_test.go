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

// The node order must not follow the names: real clusters (and the paper's
// trace) name nodes sequentially, in groups of the same hardware. With
// FNV-1a alone, 92% of neighbours in the order of the trace's 1,213 nodes
// were within ten node numbers; a random order gives about 2%.
func TestNodeOrderIsMixed(t *testing.T) {
	for _, format := range []string{"node-%04d", "openb-node-%04d", "gpu%d", "rack1-host%03d.example.com"} {
		const n = 1000
		idx := make([]int, n)
		name := func(i int) string { return fmt.Sprintf(format, i) }
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int {
			if Less(name(a), name(b)) {
				return -1
			}
			return 1
		})
		near := 0
		for i := 1; i < n; i++ {
			if d := idx[i] - idx[i-1]; d > -10 && d < 10 {
				near++
			}
		}
		if near > n/20 {
			t.Errorf("%s: %d of %d neighbours in the node order are within 10 of each other in name order, want about 2%%", format, near, n-1)
		}
	}
}

func TestNodeOrderStable(t *testing.T) {
	// The order is part of the scheduler's behaviour (every replica and
	// every release should agree): pin a few values.
	for name, want := range map[string]uint64{
		"node-a":          0x48e86629c152a3f3,
		"openb-node-0000": 0x48540ccd85cf5fce,
		"openb-node-0001": 0xd436afc917615398,
	} {
		if got := key(name); got != want {
			t.Errorf("key(%q) = %#x, want %#x", name, got, want)
		}
	}
}

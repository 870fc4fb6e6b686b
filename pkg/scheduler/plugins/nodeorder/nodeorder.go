// Package nodeorder is the StrataNodeOrder score plugin: it makes host
// selection deterministic by breaking ties between equal total scores with
// a fixed node order.
//
// kube-scheduler v1.37 picks among nodes with the same total score by the
// order its score heap yields them, and (without extenders) that order is
// the order in which the parallel Filter goroutines finished: the same
// pod on the same cluster state can land on different nodes from one run
// to the next. Strata's profile multiplies every other score plugin's
// weight by Scale and gives this plugin weight 1. Its score (0..100) is
// then always smaller than one point of any other plugin, so it changes
// no decision those plugins make and only separates totals that tie.
package nodeorder

import (
	"context"
	"hash/fnv"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
)

// Name is the plugin name in the scheduler profile.
const Name = "StrataNodeOrder"

// Scale is the factor applied to every other score plugin's weight: one
// point more than this plugin's highest score.
const Scale = fwk.MaxNodeScore + 1

// Plugin scores nodes by their rank in the fixed node order.
type Plugin struct{}

var (
	_ fwk.ScorePlugin     = Plugin{}
	_ fwk.ScoreExtensions = Plugin{}
)

// New is the plugin factory.
func New(context.Context, runtime.Object, fwk.Handle) (fwk.Plugin, error) { return Plugin{}, nil }

// Name implements fwk.Plugin.
func (Plugin) Name() string { return Name }

// Score is 0 for every node: the ranks are given in NormalizeScore, which
// sees all scored nodes at once.
func (Plugin) Score(context.Context, fwk.CycleState, *v1.Pod, fwk.NodeInfo) (int64, *fwk.Status) {
	return 0, nil
}

// ScoreExtensions implements fwk.ScorePlugin.
func (p Plugin) ScoreExtensions() fwk.ScoreExtensions { return p }

// NormalizeScore ranks the scored nodes: the first in Less gets 100, the
// next 99, and so on; from the 101st on, 0. With more than 101 scored
// nodes, nodes past the 100th can still tie with each other, which
// matters only when they also share the best total.
func (Plugin) NormalizeScore(_ context.Context, _ fwk.CycleState, _ *v1.Pod, scores fwk.NodeScoreList) *fwk.Status {
	Rank(scores)
	return nil
}

// Rank sets each score to 100 minus the node's rank in Less order (at
// least 0).
func Rank(scores fwk.NodeScoreList) {
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	keys := make([]uint64, len(scores))
	for i, s := range scores {
		keys[i] = key(s.Name)
	}
	slices.SortFunc(order, func(a, b int) int {
		if keys[a] != keys[b] {
			if keys[a] < keys[b] {
				return -1
			}
			return 1
		}
		switch {
		case scores[a].Name < scores[b].Name:
			return -1
		case scores[a].Name > scores[b].Name:
			return 1
		}
		return 0
	})
	for rank, i := range order {
		scores[i].Score = max(fwk.MinNodeScore, fwk.MaxNodeScore-int64(rank))
	}
}

// Less is the fixed node order: a 64-bit hash of the node name (FNV-1a,
// then MurmurHash3's fmix64 finaliser), then the name. It is pseudo-random
// (unrelated to how nodes are named, e.g. by rack or GPU model, so it does
// not pile work onto one rack) and the same in every scheduling cycle and
// every scheduler replica. StrataGPUFrag breaks its own ties by it too.
//
// The finaliser matters. FNV-1a alone barely changes its high bits when
// only the last characters differ, so names like node-0100, node-0101, ...
// sort almost in name order (in blocks of ten): on the FGD paper's trace,
// whose node names are sequential and grouped by GPU model, ties then
// walked through the cluster model by model, and FGD allocated fewer GPUs
// than with a well-mixed order (see bench/RESULTS.md, Decisions).
func Less(a, b string) bool {
	ka, kb := key(a), key(b)
	if ka != kb {
		return ka < kb
	}
	return a < b
}

func key(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return fmix64(h.Sum64())
}

// fmix64 is MurmurHash3's 64-bit finaliser: each input bit flips each
// output bit with probability about one half.
func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

package controlplane

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/component-base/featuregate"
)

// DefaultFeatureGates are the gates Strata sets in every component; the
// components share one process (and one feature gate), so they must agree.
//   - GenericWorkload: gang scheduling needs the PodGroup API
//     (scheduling.k8s.io/v1beta1) and the GangScheduling plugin (beta, off
//     upstream).
//   - NominatedNodeNameForExpectation (beta, on upstream) is turned off.
//     It makes kube-scheduler write status.nominatedNodeName to every pod
//     whose binding has work to do (a DRA claim to allocate, a volume to
//     bind, a gang waiting at Permit) before binding it, so that a cluster
//     autoscaler or Karpenter sees where the pod is going. A Strata cluster
//     runs neither, and that write is one of seven per GPU pod in the GPU
//     trace replay (claim, pod, this one, the claim's finalizer and
//     allocation, binding, event); without it the replay through the
//     server costs less CPU per pod and schedules more pods per second
//     (bench/RESULTS.md). --feature-gates turns it back on.
//   - EventedPLEG (alpha): the kubelet follows containerd's CRI event
//     stream, and a container's exit makes it relist that pod at once
//     instead of at the next one-second relist (the relist stays, as
//     upstream keeps it). Starts need no events: since 1.37 the kubelet
//     relists a pod right after syncing it (PLEGOnDemandRelist, GA).
const DefaultFeatureGates = "GenericWorkload=true,NominatedNodeNameForExpectation=false,EventedPLEG=true"

// featureGates are the components' --feature-gates: Strata's defaults,
// then the user's, which win.
func (c *Config) featureGates() string {
	if c.FeatureGates == "" {
		return DefaultFeatureGates
	}
	return DefaultFeatureGates + "," + c.FeatureGates
}

// ValidateFeatureGates checks the user's --feature-gates before anything
// starts: each entry is Name=true|false, names a gate this Kubernetes
// knows, and does not change a gate locked to its default.
func ValidateFeatureGates(gates string) error {
	if gates == "" {
		return nil
	}
	known := utilfeature.DefaultMutableFeatureGate.GetAll()
	for _, kv := range strings.Split(gates, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || name == "" {
			return fmt.Errorf("--feature-gates %q: entry %q is not Name=true or Name=false", gates, kv)
		}
		on, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("--feature-gates %q: %s=%q is not true or false", gates, name, val)
		}
		spec, ok := known[featuregate.Feature(name)]
		if !ok {
			return fmt.Errorf("--feature-gates: %q is not a feature gate of this Kubernetes (names are case-sensitive; the list is at https://kubernetes.io/docs/reference/command-line-tools-reference/feature-gates/)%s",
				name, suggest(name, known))
		}
		if spec.LockToDefault && on != spec.Default {
			return fmt.Errorf("--feature-gates: %s is locked to %t in this Kubernetes (%s); drop it from --feature-gates", name, spec.Default, spec.PreRelease)
		}
	}
	return nil
}

// suggest names the known gates closest to name: the same but for case,
// or a typo away (at most two single-letter edits, ignoring case).
func suggest(name string, known map[featuregate.Feature]featuregate.FeatureSpec) string {
	var close []string
	for f := range known {
		if editDistance(strings.ToLower(string(f)), strings.ToLower(name), 2) <= 2 {
			close = append(close, string(f))
		}
	}
	if len(close) == 0 {
		return ""
	}
	slices.Sort(close)
	return "; did you mean " + strings.Join(close, " or ") + "?"
}

// editDistance is the Levenshtein distance of a and b, or max+1 as soon as
// it must exceed max (gate names differ in length, most by far more).
func editDistance(a, b string, max int) int {
	if d := len(a) - len(b); d > max || -d > max {
		return max + 1
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin > max {
			return max + 1
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

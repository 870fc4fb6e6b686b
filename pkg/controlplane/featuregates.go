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
const DefaultFeatureGates = "GenericWorkload=true,NominatedNodeNameForExpectation=false"

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

// suggest names a known gate that differs from name only in case.
func suggest(name string, known map[featuregate.Feature]featuregate.FeatureSpec) string {
	var close []string
	for f := range known {
		if strings.EqualFold(string(f), name) {
			close = append(close, string(f))
		}
	}
	if len(close) == 0 {
		return ""
	}
	slices.Sort(close)
	return "; did you mean " + strings.Join(close, " or ") + "?"
}

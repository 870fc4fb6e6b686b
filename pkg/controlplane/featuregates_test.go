package controlplane

import (
	"strings"
	"testing"

	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/component-base/featuregate"
)

func TestValidateFeatureGates(t *testing.T) {
	tests := []struct {
		gates   string
		wantErr string
	}{
		{"", ""},
		{"NominatedNodeNameForExpectation=true", ""},
		{"DRAPartitionableDevices=true, GenericWorkload=false", ""},
		{"GenericWorkload", `entry "GenericWorkload" is not Name=true or Name=false`},
		{"=true", `entry "=true" is not Name=true`},
		{"GenericWorkload=yes", `GenericWorkload="yes" is not true or false`},
		{"NoSuchGate=true", `"NoSuchGate" is not a feature gate of this Kubernetes`},
		{"genericworkload=true", "did you mean GenericWorkload?"},
		{"NominatedNodeNameForExpectaton=false", "did you mean NominatedNodeNameForExpectation?"},
		{"GenericWorkloads=true", "did you mean GenericWorkload?"},
	}
	for _, tc := range tests {
		t.Run(tc.gates, func(t *testing.T) {
			err := ValidateFeatureGates(tc.gates)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestSuggestOnlyNearNames(t *testing.T) {
	if err := ValidateFeatureGates("NoSuchGate=true"); err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Fatalf("error %v: want no suggestion for a name far from every gate", err)
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		max  int
		want int
	}{
		{"", "", 2, 0},
		{"abc", "abc", 2, 0},
		{"abc", "abd", 2, 1},
		{"abc", "ac", 2, 1},
		{"abc", "abcd", 2, 1},
		{"kitten", "sitting", 3, 3},
		{"kitten", "sitting", 2, 3}, // over max: max+1
		{"a", "abcdefgh", 2, 3},     // length alone rules it out
		{"abcdef", "badcfe", 2, 3},  // three swaps are six edits
	}
	for _, tc := range tests {
		if got := editDistance(tc.a, tc.b, tc.max); got != tc.want {
			t.Errorf("editDistance(%q, %q, %d) = %d, want %d", tc.a, tc.b, tc.max, got, tc.want)
		}
	}
}

func TestValidateFeatureGatesLocked(t *testing.T) {
	for name, spec := range utilfeature.DefaultMutableFeatureGate.GetAll() {
		if !spec.LockToDefault {
			continue
		}
		flip := "true"
		if spec.Default {
			flip = "false"
		}
		err := ValidateFeatureGates(string(name) + "=" + flip)
		if err == nil || !strings.Contains(err.Error(), "is locked to") {
			t.Fatalf("%s=%s: error %v, want 'is locked to'", name, flip, err)
		}
		return
	}
	t.Skip("this Kubernetes has no locked feature gate")
}

// The components parse one --feature-gates value: Strata's defaults, then
// the user's; the user's win.
func TestFeatureGatesUserWins(t *testing.T) {
	const nnn = featuregate.Feature("NominatedNodeNameForExpectation")
	tests := []struct {
		user string
		want bool
	}{
		{"", false},
		{"NominatedNodeNameForExpectation=true", true},
	}
	for _, tc := range tests {
		fg := utilfeature.DefaultMutableFeatureGate.DeepCopy()
		c := &Config{FeatureGates: tc.user}
		if err := fg.Set(c.featureGates()); err != nil {
			t.Fatalf("%q: %v", c.featureGates(), err)
		}
		if got := fg.Enabled(nnn); got != tc.want {
			t.Errorf("user %q: %s enabled = %t, want %t", tc.user, nnn, got, tc.want)
		}
		if !fg.Enabled("GenericWorkload") {
			t.Errorf("user %q: GenericWorkload is off", tc.user)
		}
	}
}

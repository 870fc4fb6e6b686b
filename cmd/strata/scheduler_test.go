package main

import (
	"strings"
	"testing"
)

// A scheduler name that pods could not name is refused before kube-scheduler
// starts.
func TestSchedulerBadName(t *testing.T) {
	cmd := newRootCommand()
	cmd.SetArgs([]string{"scheduler", "--scheduler-name", "Strata_GPU"})
	var out strings.Builder
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), `--scheduler-name "Strata_GPU"`) {
		t.Fatalf("err = %v, want the flag and value named", err)
	}
}

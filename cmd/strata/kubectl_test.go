package main

import (
	"reflect"
	"testing"
)

func TestTakeDataDir(t *testing.T) {
	tests := []struct {
		args     []string
		wantDir  string
		wantRest []string
	}{
		{[]string{"get", "pods"}, "/def", []string{"get", "pods"}},
		{[]string{"--data-dir", "/x", "get", "pods"}, "/x", []string{"get", "pods"}},
		{[]string{"get", "--data-dir=/y", "pods", "-A"}, "/y", []string{"get", "pods", "-A"}},
		{[]string{"--data-dir"}, "/def", []string{"--data-dir"}},
	}
	for _, tc := range tests {
		dir, rest := takeDataDir(tc.args, "/def")
		if dir != tc.wantDir || !reflect.DeepEqual(rest, tc.wantRest) {
			t.Errorf("takeDataDir(%q) = %q %q, want %q %q", tc.args, dir, rest, tc.wantDir, tc.wantRest)
		}
	}
}

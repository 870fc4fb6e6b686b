package main

import (
	"strings"
	"testing"
)

// Bad flags to `strata function deploy` name the flag and the fix.
func TestFunctionDeployBadFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"fn"}, "--image is required"},
		{[]string{"fn", "--image", "x", "--runtime", "java"}, `--runtime "java": use wasm or container`},
		{[]string{"fn", "--image", "x", "--port", "0"}, "--port 0: use a port from 1 to 65535"},
		{[]string{"fn", "--image", "x", "--env", "NOEQUALS"}, `--env "NOEQUALS": use NAME=VALUE`},
		{[]string{"fn", "--image", "x", "--env", "1BAD=v"}, `--env "1BAD=v"`},
		{[]string{"fn", "--image", "x", "--min-scale", "3", "--max-scale", "2"}, "--min-scale 3 is above --max-scale 2"},
		{[]string{"fn", "--image", "x", "--target-concurrency", "0"}, "--target-concurrency 0"},
		{[]string{"fn", "--image", "x", "--timeout", "-1s"}, "--timeout -1s: use a positive duration"},
		{[]string{"fn", "--image", "x", "--memory", "lots"}, `--memory "lots"`},
		{[]string{"Bad_Name", "--image", "x"}, `function name "Bad_Name"`},
	}
	for _, tt := range tests {
		cmd := newFunctionCommand()
		cmd.SetArgs(append([]string{"deploy", "--kubeconfig", "/nonexistent"}, tt.args...))
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("deploy %v: error %v, want %q", tt.args, err, tt.wantErr)
		}
	}
}

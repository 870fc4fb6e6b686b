package main

import (
	"strings"
	"testing"
)

// Bad flags are refused before anything talks to a cluster, each with a
// message naming the flag and the fix.
func TestExtensionsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--unmatched-images", "maybe"}, `unmatched-images "maybe": use deny, warn or allow`},
		{[]string{"--image-verify-timeout", "30s"}, "--image-verify-timeout 30s: use a duration above 0 and below the webhook timeout of 10s"},
		{[]string{"--webhook-port", "70000"}, "--webhook-port 70000 is out of range"},
		{[]string{"--webhook-service", "no-namespace"}, `--webhook-service "no-namespace": use NAMESPACE/NAME`},
		{[]string{"--webhook-bind-address", "0.0.0.0"}, "--webhook-address is needed when the webhooks listen on 0.0.0.0"},
		{[]string{"--kubeconfig", "/nonexistent/kubeconfig"}, "kubeconfig:"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := newRootCommand()
			cmd.SetArgs(append([]string{"extensions", "--state-dir", t.TempDir()}, tc.args...))
			var out strings.Builder
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

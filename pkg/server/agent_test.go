package server

import (
	"strings"
	"testing"
)

func TestAgentValidate(t *testing.T) {
	const token = "strata1:sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + ":abcdef.0123456789abcdef"
	tests := []struct {
		name    string
		edit    func(*AgentConfig)
		wantErr string
	}{
		{name: "valid", edit: func(*AgentConfig) {}},
		{name: "no server", edit: func(c *AgentConfig) { c.Server = "" }, wantErr: "--server and --token are required"},
		{name: "http server", edit: func(c *AgentConfig) { c.Server = "http://10.0.0.1:6443" }, wantErr: "give the server's API address as https://HOST:PORT"},
		{name: "malformed token", edit: func(c *AgentConfig) { c.Token = "K10abc" }, wantErr: "--token: join token"},
		{name: "bad node name", edit: func(c *AgentConfig) { c.NodeName = "Edge_1" }, wantErr: `--node-name "Edge_1"`},
		{name: "bad node IP", edit: func(c *AgentConfig) { c.NodeIP = "10.0.0" }, wantErr: `--node-ip "10.0.0" is not an IPv4 address`},
		{name: "bad label", edit: func(c *AgentConfig) { c.Labels = map[string]string{"a b": "c"} }, wantErr: `--labels: key "a b"`},
		{name: "bad label value", edit: func(c *AgentConfig) { c.Labels = map[string]string{"zone": "a b"} }, wantErr: `--labels: value "a b" of zone`},
		{name: "bad GPU backend", edit: func(c *AgentConfig) { c.GPUBackend = "cuda" }, wantErr: `--gpu-backend "cuda"`},
		{name: "bad port", edit: func(c *AgentConfig) { c.KubeletPort = 0 }, wantErr: "--kubelet-port 0 is out of range"},
		{name: "no join backoff", edit: func(c *AgentConfig) { c.JoinBackoffMax = 0 }, wantErr: "--join-backoff-max 0s: use at least 1s"},
		{name: "bad vxlan mode", edit: func(c *AgentConfig) { c.VXLAN = "yes" }, wantErr: `--vxlan "yes": use auto`},
		{name: "relative pod logs dir", edit: func(c *AgentConfig) { c.PodLogsDir = "logs" }, wantErr: "--pod-logs-dir \"logs\" is relative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := AgentDefaults()
			c.DataDir, c.Server, c.Token, c.NodeName = t.TempDir(), "https://10.0.0.1:6443", token, "edge1"
			tc.edit(&c)
			_, err := c.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Validate: %v, want %q", err, tc.wantErr)
			}
		})
	}
}

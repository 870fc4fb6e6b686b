package node

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGateway(t *testing.T) {
	tests := []struct {
		cidr, want, wantErr string
	}{
		{cidr: "10.88.0.0/16", want: "10.88.0.1"},
		{cidr: "10.88.5.7/16", want: "10.88.0.1"},
		{cidr: "192.168.10.0/24", want: "192.168.10.1"},
		{cidr: "10.88.0.0", wantErr: "cluster CIDR \"10.88.0.0\""},
		{cidr: "fd00::/64", wantErr: "only IPv4 is supported"},
	}
	for _, tc := range tests {
		n := &Network{ClusterCIDR: tc.cidr}
		gw, _, err := n.Gateway()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.cidr, err, tc.wantErr)
			}
			continue
		}
		if err != nil || gw.String() != tc.want {
			t.Errorf("%s: gateway %v %v, want %s", tc.cidr, gw, err, tc.want)
		}
	}
}

func TestWriteCNIConfig(t *testing.T) {
	dir := t.TempDir()
	n := &Network{Bridge: "strata0", ClusterCIDR: "10.88.0.0/16", ConfDir: dir, IPAMDir: "/data/ipam"}
	if err := n.WriteCNIConfig(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "10-strata.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Name    string
		Plugins []map[string]any
	}
	if err := json.Unmarshal(raw, &conf); err != nil {
		t.Fatalf("conflist is not JSON: %v", err)
	}
	if conf.Name != "strata" || len(conf.Plugins) != 2 || conf.Plugins[0]["type"] != "bridge" || conf.Plugins[1]["type"] != "portmap" {
		t.Fatalf("unexpected conflist: %s", raw)
	}
	for _, want := range []string{`"bridge": "strata0"`, `"subnet": "10.88.0.0/16"`, `"gateway": "10.88.0.1"`, `"dataDir": "/data/ipam"`, `"hairpinMode": true`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("conflist lacks %s:\n%s", want, raw)
		}
	}
}

func TestContainerdConfig(t *testing.T) {
	c := &Containerd{
		Root: "/d/root", State: "/run/x", Socket: "/run/x.sock", SandboxImage: "localhost:5000/strata/pause:3.10",
		CNIBinDir: "/usr/lib/cni", CNIConfDir: "/d/net.d", RegistryHostsDir: "/d/certs.d",
		ExtraRuntimes: []Runtime{{Name: "wasm", Type: "io.containerd.strata-wasm.v1",
			PodAnnotations: []string{"wasm.strata.dev/*"}, ContainerAnnotations: []string{"a", "b"}}},
	}
	file := filepath.Join(t.TempDir(), "config.toml")
	if err := c.WriteConfig(file); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(file)
	for _, want := range []string{
		`root = "/d/root"`,
		`address = "/run/x.sock"`,
		`sandbox_image = "localhost:5000/strata/pause:3.10"`,
		`restrict_oom_score_adj = true`,
		`SystemdCgroup = false`,
		`[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wasm]`,
		`runtime_type = "io.containerd.strata-wasm.v1"`,
		`pod_annotations = ["wasm.strata.dev/*"]`,
		`container_annotations = ["a", "b"]`,
		`config_path = "/d/certs.d"`,
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("config lacks %s:\n%s", want, raw)
		}
	}
	if c.Endpoint() != "unix:///run/x.sock" {
		t.Errorf("endpoint %s", c.Endpoint())
	}
}

func TestFindBinariesExplainTheFix(t *testing.T) {
	if _, err := FindContainerd("/nonexistent/containerd"); err == nil || !strings.Contains(err.Error(), "apt-get install containerd runc") {
		t.Errorf("FindContainerd: %v", err)
	}
	if _, err := FindCNIBinDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "apt-get install containernetworking-plugins") {
		t.Errorf("FindCNIBinDir: %v", err)
	}
}

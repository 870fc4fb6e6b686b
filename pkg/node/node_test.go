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
		{cidr: "10.88.0.0", wantErr: "pod CIDR \"10.88.0.0\""},
		{cidr: "fd00::/64", wantErr: "only IPv4 is supported"},
	}
	for _, tc := range tests {
		n := &Network{PodCIDR: tc.cidr}
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

func TestFirstSubnet(t *testing.T) {
	tests := []struct {
		cidr    string
		mask    int
		want    string
		wantErr string
	}{
		{cidr: "10.88.0.0/16", mask: 24, want: "10.88.0.0/24"},
		{cidr: "10.88.7.9/16", mask: 20, want: "10.88.0.0/20"},
		{cidr: "10.88.0.0/16", mask: 16, want: "10.88.0.0/16"},
		{cidr: "10.88.0.0/24", mask: 16, wantErr: "use a size from 24 to 30"},
		{cidr: "10.88.0.0/16", mask: 31, wantErr: "use a size from 16 to 30"},
		{cidr: "fd00::/64", mask: 80, wantErr: "not an IPv4 CIDR"},
	}
	for _, tc := range tests {
		got, err := FirstSubnet(tc.cidr, tc.mask)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s /%d: %q %v, want error %q", tc.cidr, tc.mask, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s /%d: %q %v, want %s", tc.cidr, tc.mask, got, err, tc.want)
		}
	}
}

func TestWriteCNIConfig(t *testing.T) {
	dir := t.TempDir()
	n := &Network{Bridge: "strata0", ClusterCIDR: "10.88.0.0/16", PodCIDR: "10.88.3.0/24", ConfDir: dir, IPAMDir: "/data/ipam"}
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
	for _, want := range []string{`"bridge": "strata0"`, `"subnet": "10.88.3.0/24"`, `"gateway": "10.88.3.1"`, `"dataDir": "/data/ipam"`, `"hairpinMode": true`, `"ipMasq": false`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("conflist lacks %s:\n%s", want, raw)
		}
	}
}

func TestContainerdConfig(t *testing.T) {
	c := &Containerd{
		Root: "/d/root", State: "/run/x", Socket: "/run/x.sock", SandboxImage: "localhost:5000/strata/pause:3.10",
		CNIBinDir: "/usr/lib/cni", CNIConfDir: "/d/net.d", RegistryHostsDir: "/d/certs.d",
		ConfDir: "/d/conf.d", CDISpecDirs: []string{"/run/x/cdi"}, NRI: NRI{Socket: "/run/x/nri.sock"},
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
		`sandbox = "localhost:5000/strata/pause:3.10"`,
		`enable_cdi = true`,
		`imports = ["/d/conf.d/*.toml"]`,
		`cdi_spec_dirs = ["/run/x/cdi"]`,
		`socket_path = "/run/x/nri.sock"`,
		`restrict_oom_score_adj = true`,
		`SystemdCgroup = false`,
		`[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.wasm]`,
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
	if _, err := FindCNIBinDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "apt-get install containernetworking-plugins") {
		t.Errorf("FindCNIBinDir: %v", err)
	}
}

func TestFindContainerd(t *testing.T) {
	// fake writes a containerd that prints version, with or without its
	// runc shim beside it.
	fake := func(version string, shim bool) string {
		dir := t.TempDir()
		bin := filepath.Join(dir, "containerd")
		script := "#!/bin/sh\necho 'containerd github.com/containerd/containerd " + version + " abc'\n"
		if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		if shim {
			if err := os.WriteFile(filepath.Join(dir, runcShim), nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return bin
	}
	tests := []struct {
		name, path, builtin, wantErr string
	}{
		{name: "built next to strata", builtin: fake("v2.3.7", true)},
		{name: "flag wins", path: fake("v2.3.7", true), builtin: "/nonexistent"},
		{name: "none", wantErr: "no containerd next to strata; build it with `make build`"},
		{name: "missing", path: "/nonexistent/containerd", wantErr: `"/nonexistent/containerd" is not an executable; build it with`},
		{name: "containerd 1.6", path: fake("1.6.20~ds1", true), wantErr: "is version 1.6.20~ds1; Strata needs containerd 2.x"},
		{name: "no runc shim", path: fake("v2.3.7", false), wantErr: "its runc shim"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FindContainerd(tc.path, tc.builtin)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got == "" {
				t.Fatalf("FindContainerd: %q %v", got, err)
			}
		})
	}
}

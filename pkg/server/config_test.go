package server

import (
	"github.com/strata-dev/strata/pkg/layout"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"empty data dir", func(c *Config) { c.DataDir = "" }, "--data-dir is empty"},
		{"bad bind address", func(c *Config) { c.BindAddress = "localhost" }, "--bind-address \"localhost\" is not an IP"},
		{"port zero", func(c *Config) { c.APIPort = 0 }, "--https-port 0 is out of range"},
		{"port too big", func(c *Config) { c.RegistryPort = 70000 }, "--registry-port 70000 is out of range"},
		{"bad cluster cidr", func(c *Config) { c.ClusterCIDR = "10.88.0.0" }, "--cluster-cidr \"10.88.0.0\" is not an IPv4 CIDR"},
		{"ipv6 service cidr", func(c *Config) { c.ServiceCIDR = "fd00::/108" }, "--service-cidr"},
		{"unknown pod security level", func(c *Config) { c.PodSecurity = "strict" }, "--pod-security \"strict\" is not a Pod Security level: use one of restricted, baseline, privileged"},
		{"no node name", func(c *Config) { c.NodeName = "" }, "--node-name is empty"},
		{"node IP", func(c *Config) { c.NodeIP = "192.168.1.10" }, ""},
		{"loopback node IP", func(c *Config) { c.NodeIP = "127.0.0.1" }, "--node-ip \"127.0.0.1\" is not a usable IPv4 address"},
		{"node mask wider than the cluster", func(c *Config) { c.NodeCIDRMaskSize = 8 }, "--node-cidr-mask-size: node CIDR mask size 8 does not fit cluster CIDR 10.88.0.0/16"},
		{"node monitor grace too short", func(c *Config) { c.NodeMonitorGrace = 10 * time.Second }, "--node-monitor-grace 10s is too short"},
		{"bad vxlan mode", func(c *Config) { c.VXLAN = "on" }, `--vxlan "on": use auto`},
		{"negative node grace", func(c *Config) { c.NodeGrace = -time.Second }, "--node-grace -1s is negative"},
		{"gateway port out of range", func(c *Config) { c.GatewayPort = -1 }, "--gateway-port -1 is out of range"},
		{"metrics port out of range", func(c *Config) { c.MetricsPort = 65536 }, "--metrics-port 65536 is out of range"},
		{"bad min free disk", func(c *Config) { c.MinFreeDisk = "lots" }, `--min-free-disk "lots" is not a size: use e.g. 256Mi`},
		{"negative min free disk", func(c *Config) { c.MinFreeDisk = "-1Gi" }, `--min-free-disk "-1Gi" is not a size`},
		{"min free disk off", func(c *Config) { c.MinFreeDisk = "0" }, ""},
		{"unknown gateway auth", func(c *Config) { c.GatewaySecurity.Auth = "oidc" }, `--gateway-auth "oidc": use none`},
		{"gateway certificate without key", func(c *Config) { c.GatewaySecurity.TLSCertFile = "/etc/hostname" }, "--gateway-tls-cert-file and --gateway-tls-key-file go together"},
		{"bad function domain", func(c *Config) { c.FunctionDomain = "Not_A_Domain" }, "--function-domain \"Not_A_Domain\""},
		{"feature gate", func(c *Config) { c.FeatureGates = "NominatedNodeNameForExpectation=true" }, ""},
		{"unknown feature gate", func(c *Config) { c.FeatureGates = "GangScheduler=true" }, `"GangScheduler" is not a feature gate`},
		{"negative GC percent", func(c *Config) { c.GCPercent = -1 }, "--gc-percent -1 is negative"},
		{"GC percent from the environment", func(c *Config) { c.GCPercent = 0 }, ""},
		{"memory limit", func(c *Config) { c.MemoryLimit = "1536Mi" }, ""},
		{"memory limit not a size", func(c *Config) { c.MemoryLimit = "lots" }, `--memory-limit "lots" is not a positive size`},
		{"memory limit zero", func(c *Config) { c.MemoryLimit = "0" }, `--memory-limit "0" is not a positive size`},
		{"feature gate without value", func(c *Config) { c.FeatureGates = "GenericWorkload" }, `entry "GenericWorkload" is not Name=true or Name=false`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			c.DataDir = t.TempDir()
			tc.mutate(&c)
			err := c.Validate()
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

func TestCheckPortsNamesTheTakenPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	freeAddr := free.Addr().String()
	free.Close()
	err = checkPorts([]portUse{
		{"tcp", freeAddr, "first", "--first-port"},
		{"tcp", l.Addr().String(), "the thing", "--thing-port"},
	})
	_, port, _ := net.SplitHostPort(l.Addr().String())
	want := "port " + port + " (the thing, tcp) is already in use: stop the process that uses it or pass --thing-port with a free port"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestDataDirLockIsExclusive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	lock, err := checkDataDir(layout.Layout{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := checkDataDir(layout.Layout{DataDir: dir}); err == nil || !strings.Contains(err.Error(), "in use by another strata server") {
		t.Fatalf("second server on the same data dir: %v", err)
	}
}

func TestDataDirUnderAFileIsRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := checkDataDir(layout.Layout{DataDir: filepath.Join(file, "state")})
	if err == nil || !strings.Contains(err.Error(), "cannot be created: not a directory") {
		t.Fatalf("got %v", err)
	}
}

package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/strata-dev/strata/pkg/controlplane"
	"github.com/strata-dev/strata/pkg/diskspace"
	"github.com/strata-dev/strata/pkg/fileutil"
	"github.com/strata-dev/strata/pkg/layout"
	"github.com/strata-dev/strata/pkg/node"
)

// Fixed loopback ports of node components, as upstream numbers them.
const (
	kubeletHealthzPort = 10248
	proxyHealthzPort   = 10256
	proxyMetricsPort   = 10249
)

// nodeBinaries are the programs the node runs, found before anything starts.
type nodeBinaries struct {
	containerd, cniDir, pause string
	// wasmShim is optional: "" when absent (no wasm pods).
	wasmShim string
}

// preflight checks what can be checked before the first component starts
// (binaries, GPUs, free ports) and creates the pod bridge, whose address
// the control plane advertises.
func (s *server) preflight(ctx context.Context) error {
	cfg := &s.cfg
	podCIDR, err := node.FirstSubnet(cfg.ClusterCIDR, cfg.NodeCIDRMaskSize)
	if err != nil {
		return err
	}
	s.network = &node.Network{Bridge: cfg.Bridge, ClusterCIDR: cfg.ClusterCIDR, PodCIDR: podCIDR, ConfDir: s.layout.CNIConfDir(), IPAMDir: s.layout.CNIIPAMDir()}
	nodeIP, _, err := s.network.Gateway()
	if err != nil {
		return err
	}
	if cfg.NodeIP != "" {
		if nodeIP, err = localAddress(cfg.NodeIP); err != nil {
			return err
		}
	}
	if !cfg.DisableAgent {
		if err := s.findNodeBinaries(ctx); err != nil {
			return err
		}
	}
	if err := checkPorts(s.ports()); err != nil {
		return err
	}
	if !cfg.DisableAgent {
		gw, err := s.network.EnsureBridge()
		if err != nil {
			return err
		}
		if cfg.NodeIP == "" {
			nodeIP = gw
		}
		if err := s.network.EnsureMasquerade(); err != nil {
			return err
		}
		// The node's own ports are on its address, which exists now.
		if err := checkPorts([]portUse{
			{"tcp", net.JoinHostPort(nodeIP.String(), strconv.Itoa(cfg.KubeletPort)), "kubelet", "--kubelet-port"},
			{"udp", net.JoinHostPort(nodeIP.String(), strconv.Itoa(cfg.DNSPort)), "cluster DNS", "--dns-port"},
			{"tcp", net.JoinHostPort(nodeIP.String(), strconv.Itoa(cfg.DNSPort)), "cluster DNS", "--dns-port"},
		}); err != nil {
			return err
		}
	}
	s.nodeIP = nodeIP
	s.cp = &controlplane.Config{
		Layout:             s.layout,
		BindAddress:        net.ParseIP(cfg.BindAddress),
		AdvertiseAddress:   nodeIP,
		APIPort:            cfg.APIPort,
		EtcdPort:           cfg.EtcdPort,
		ServiceCIDR:        cfg.ServiceCIDR,
		ClusterCIDR:        cfg.ClusterCIDR,
		ClusterDomain:      cfg.ClusterDomain,
		NodeName:           cfg.NodeName,
		ExtraSANs:          cfg.TLSSANs,
		PodSecurityDefault: cfg.PodSecurity,
		Profiling:          cfg.Profiling,
		FeatureGates:       cfg.FeatureGates,
		NodeCIDRMaskSize:   cfg.NodeCIDRMaskSize,

		NodeMonitorGracePeriod: cfg.NodeMonitorGrace,
		NodeGrace:              cfg.NodeGrace,
	}
	if !cfg.Vanilla {
		s.cp.WebhookHost = loopback(cfg.WebhookPort)
	}
	if minFree, _ := cfg.MinFreeDiskBytes(); minFree > 0 { // checked by Validate
		s.disk = &diskspace.Guard{Dir: cfg.DataDir, MinFree: minFree, Say: s.say}
		s.cp.Disk = s.disk
	}
	return nil
}

// localAddress checks that ip is an address of this machine: the kubelet,
// cluster DNS and the registry's pull listener bind it.
func localAddress(ip string) (net.IP, error) {
	want := net.ParseIP(ip)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list this machine's addresses: %w", err)
	}
	var have []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if n.IP.Equal(want) {
				return want.To4(), nil
			}
			have = append(have, n.IP.String())
		}
	}
	return nil, fmt.Errorf("--node-ip %s is not an address of this machine (it has %s): give one of those", ip, strings.Join(have, ", "))
}

func (s *server) findNodeBinaries(ctx context.Context) error {
	cfg, b := &s.cfg, &s.bins
	var err error
	if b.containerd, err = node.FindContainerd(cfg.Containerd, besideStrata("containerd")); err != nil {
		return err
	}
	if b.cniDir, err = node.FindCNIBinDir(candidates(cfg.CNIBinDir, "/usr/lib/cni", "/opt/cni/bin")...); err != nil {
		return err
	}
	if b.pause, err = findPause(cfg.PauseBinary); err != nil {
		return err
	}
	if cfg.Vanilla {
		return nil // no wasm runtime, no GPU driver
	}
	b.wasmShim = besideStrata("containerd-shim-strata-wasm-v1")
	s.gpus, err = gpuInventory(ctx, gpuFlags{cfg.GPUBackend, cfg.SimulatedGPUs, cfg.SimulatedGPUsFile, cfg.NodeName})
	return err
}

// ports are the ports the server listens on, with who needs them and the
// flag that moves them.
func (s *server) ports() []portUse {
	cfg := &s.cfg
	bind := cfg.BindAddress
	ports := []portUse{
		{"tcp", net.JoinHostPort(bind, strconv.Itoa(cfg.APIPort)), "kube-apiserver", "--https-port"},
		{"tcp", loopback(cfg.EtcdPort), "etcd client", "--etcd-port"},
		{"tcp", loopback(cfg.EtcdPort + 1), "etcd peer", "--etcd-port"},
		{"tcp", loopback(cfg.RegistryPort), "OCI registry", "--registry-port"},
		{"tcp", loopback(cfg.WebhookPort), "admission webhooks", "--webhook-port"},
		{"tcp", net.JoinHostPort(bind, strconv.Itoa(cfg.GatewayPort)), "function gateway", "--gateway-port"},
		{"tcp", loopback(cfg.MetricsPort), "metrics", "--metrics-port"},
	}
	if cfg.NodeIP != "" {
		ports = append(ports, portUse{"tcp", net.JoinHostPort(cfg.NodeIP, strconv.Itoa(cfg.RegistryPort)), "OCI registry (pulls by other nodes)", "--registry-port"})
	}
	if !cfg.DisableAgent {
		ports = append(ports,
			portUse{"tcp", loopback(kubeletHealthzPort), "kubelet healthz", ""},
			portUse{"tcp", loopback(proxyHealthzPort), "kube-proxy healthz", ""},
			portUse{"tcp", loopback(proxyMetricsPort), "kube-proxy metrics", ""},
		)
	}
	return ports
}

// findPause locates strata-pause: the flag, or next to the strata binary.
func findPause(flagValue string) (string, error) {
	if flagValue != "" {
		if _, err := os.Stat(flagValue); err != nil {
			return "", fmt.Errorf("--pause-binary %s: %v", flagValue, unwrapPathErr(err))
		}
		return flagValue, nil
	}
	if p := besideStrata("strata-pause"); p != "" {
		return p, nil
	}
	return "", errors.New("strata-pause not found next to the strata binary: build both with `make build` or pass --pause-binary")
}

// besideStrata returns the path of a helper binary built next to strata,
// or "" when it is not there.
func besideStrata(name string) string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(exe), name)
	if !fileutil.Exists(p) {
		return ""
	}
	return p
}

func candidates(first string, rest ...string) []string {
	if first != "" {
		return []string{first}
	}
	return rest
}

// checkDataDir makes sure the state directory can be created and written,
// and takes an exclusive lock so two servers never share it.
func checkDataDir(l layout.Layout) (*os.File, error) {
	dir := l.DataDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s cannot be created: %v; pass --data-dir with a directory you can write", dir, unwrapPathErr(err))
	}
	probe, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return nil, fmt.Errorf("data dir %s is not writable: %v; fix its permissions or pass --data-dir with a directory you can write", dir, unwrapPathErr(err))
	}
	probe.Close()
	os.Remove(probe.Name())
	lock, err := os.OpenFile(l.Lock(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: lock file: %w", dir, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("data dir %s is in use by another strata server: stop it first or pass another --data-dir", dir)
	}
	return lock, nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

type portUse struct {
	proto, addr, what, flag string
}

// checkPorts fails with one line naming the first port that is taken, who
// needs it and the flag that moves it, before any process is started.
func checkPorts(ports []portUse) error {
	for _, p := range ports {
		var err error
		if p.proto == "udp" {
			var c net.PacketConn
			if c, err = net.ListenPacket("udp", p.addr); err == nil {
				c.Close()
			}
		} else {
			var l net.Listener
			if l, err = net.Listen("tcp", p.addr); err == nil {
				l.Close()
			}
		}
		if err == nil {
			continue
		}
		fix := "stop the process that uses it"
		if p.flag != "" {
			fix += " or pass " + p.flag + " with a free port"
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("port %s (%s, %s) is already in use: %s", portOf(p.addr), p.what, p.proto, fix)
		}
		return fmt.Errorf("cannot listen on %s (%s): %v: %s", p.addr, p.what, unwrapNetErr(err), fix)
	}
	return nil
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

func unwrapNetErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-dev/strata/pkg/fileutil"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Network is the node's pod network: a Linux bridge with the pod range's
// first address as gateway. The gateway is also the node's address, so the
// API server, the kubelet and cluster DNS are reachable from every pod
// without sending anything off the machine.
type Network struct {
	Bridge      string
	ClusterCIDR string
	ConfDir     string
	IPAMDir     string
}

// Gateway returns the bridge's address, the first in the pod range.
func (n *Network) Gateway() (net.IP, *net.IPNet, error) {
	ip, ipnet, err := net.ParseCIDR(n.ClusterCIDR)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster CIDR %q: %w", n.ClusterCIDR, err)
	}
	ip4 := ip.Mask(ipnet.Mask).To4()
	if ip4 == nil {
		return nil, nil, fmt.Errorf("cluster CIDR %q: only IPv4 is supported", n.ClusterCIDR)
	}
	gw := make(net.IP, 4)
	copy(gw, ip4)
	gw[3]++
	return gw, ipnet, nil
}

// EnsureBridge creates the bridge with its gateway address if needed and
// turns on forwarding and bridge netfilter, which kube-proxy relies on.
func (n *Network) EnsureBridge() (net.IP, error) {
	gw, ipnet, err := n.Gateway()
	if err != nil {
		return nil, err
	}
	link, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if !errors.As(err, &notFound) {
			return nil, fmt.Errorf("look up bridge %s: %w", n.Bridge, err)
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.Bridge, MTU: 1500}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create bridge %s: %w", n.Bridge, err)
		}
		if link, err = netlink.LinkByName(n.Bridge); err != nil {
			return nil, fmt.Errorf("look up bridge %s: %w", n.Bridge, err)
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: gw, Mask: ipnet.Mask}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return nil, fmt.Errorf("set address %s on %s: %w", addr.IPNet, n.Bridge, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("bring up %s: %w", n.Bridge, err)
	}
	for _, s := range []struct{ path, value string }{
		{"/proc/sys/net/ipv4/ip_forward", "1"},
		{"/proc/sys/net/bridge/bridge-nf-call-iptables", "1"},
	} {
		cur, err := os.ReadFile(s.path)
		if err == nil && strings.TrimSpace(string(cur)) == s.value {
			continue
		}
		if err := os.WriteFile(s.path, []byte(s.value), 0o644); err != nil {
			return nil, fmt.Errorf("set %s=%s (needed for Service traffic between pods): %w", s.path, s.value, err)
		}
	}
	return gw, nil
}

// WriteCNIConfig writes the conflist containerd's CRI plugin uses.
func (n *Network) WriteCNIConfig() error {
	gw, ipnet, err := n.Gateway()
	if err != nil {
		return err
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "strata",
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      n.Bridge,
				"isGateway":   true,
				"ipMasq":      true,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": n.IPAMDir,
					"ranges":  [][]map[string]string{{{"subnet": ipnet.String(), "gateway": gw.String()}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return fmt.Errorf("encode CNI config: %w", err)
	}
	return fileutil.WriteAtomic(filepath.Join(n.ConfDir, "10-strata.conflist"), data, 0o644)
}

// FindCNIBinDir returns the first directory holding the bridge plugin.
func FindCNIBinDir(candidates ...string) (string, error) {
	for _, d := range candidates {
		if fileutil.Exists(filepath.Join(d, "bridge")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("CNI plugins not found in %s: install them with `apt-get install containernetworking-plugins` or pass --cni-bin-dir", strings.Join(candidates, ", "))
}

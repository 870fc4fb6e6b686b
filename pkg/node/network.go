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

// Network is the node's pod network: a Linux bridge holding the node's
// share of the cluster's pod range (spec.podCIDR, from the controller
// manager's node IPAM) with its first address as gateway. Pods reach other
// nodes' pods without NAT through routes (Routes); traffic leaving the
// cluster's range is masqueraded to the node's address.
type Network struct {
	Bridge      string
	ClusterCIDR string
	// PodCIDR is this node's range, inside ClusterCIDR.
	PodCIDR string
	ConfDir string
	IPAMDir string
}

// Gateway returns the bridge's address, the first in the node's range.
func (n *Network) Gateway() (net.IP, *net.IPNet, error) {
	ip, ipnet, err := net.ParseCIDR(n.PodCIDR)
	if err != nil {
		return nil, nil, fmt.Errorf("pod CIDR %q: %w", n.PodCIDR, err)
	}
	ip4 := ip.Mask(ipnet.Mask).To4()
	if ip4 == nil {
		return nil, nil, fmt.Errorf("pod CIDR %q: only IPv4 is supported", n.PodCIDR)
	}
	gw := make(net.IP, 4)
	copy(gw, ip4)
	gw[3]++
	return gw, ipnet, nil
}

// FirstSubnet is the first /maskSize of cidr: the server node's range, so
// its bridge address (and a single node's address) is the same on every
// start.
func FirstSubnet(cidr string, maskSize int) (string, error) {
	ip, ipnet, err := net.ParseCIDR(cidr)
	if err != nil || ip.To4() == nil {
		return "", fmt.Errorf("cluster CIDR %q is not an IPv4 CIDR", cidr)
	}
	if ones, _ := ipnet.Mask.Size(); maskSize < ones || maskSize > 30 {
		return "", fmt.Errorf("node CIDR mask size %d does not fit cluster CIDR %s: use a size from %d to 30", maskSize, cidr, ones)
	}
	sub := &net.IPNet{IP: ipnet.IP.To4(), Mask: net.CIDRMask(maskSize, 32)}
	return sub.String(), nil
}

// EnsureBridge creates the bridge with its gateway address if needed (and
// drops any other address, e.g. a previous range's) and turns on
// forwarding and bridge netfilter, which kube-proxy relies on.
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
	want := &net.IPNet{IP: gw, Mask: ipnet.Mask}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", n.Bridge, err)
	}
	for _, a := range addrs {
		if a.IPNet.String() != want.String() {
			if err := netlink.AddrDel(link, &a); err != nil {
				return nil, fmt.Errorf("remove stale address %s from %s: %w", a.IPNet, n.Bridge, err)
			}
		}
	}
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: want}); err != nil {
		return nil, fmt.Errorf("set address %s on %s: %w", want, n.Bridge, err)
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

// WriteCNIConfig writes the conflist containerd's CRI plugin uses. The
// bridge plugin's own masquerading is off: it would NAT pod-to-pod traffic
// between nodes (see EnsureMasquerade).
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
				"ipMasq":      false,
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

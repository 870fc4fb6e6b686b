package node

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VXLAN modes: when Routes tunnels to another node instead of routing to
// it directly (host-gw).
const (
	// VXLANAuto tunnels to nodes that are not on a link this node shares.
	VXLANAuto = "auto"
	// VXLANAlways tunnels to every node.
	VXLANAlways = "always"
	// VXLANNever routes host-gw only; nodes off this node's links are
	// unreachable.
	VXLANNever = "never"
)

// ValidateVXLANMode checks a --vxlan flag.
func ValidateVXLANMode(mode string) error {
	switch mode {
	case VXLANAuto, VXLANAlways, VXLANNever:
		return nil
	}
	return fmt.Errorf("--vxlan %q: use auto (tunnel to nodes not on a shared link), always or never", mode)
}

const (
	// VXLANDevice is the tunnel device every node has, whatever its mode:
	// a node that routes host-gw must still take packets a node in
	// "always" mode tunnels to it.
	VXLANDevice = "strata.vxlan"
	// vxlanVNI and vxlanPort are flannel's defaults (VNI 1, UDP 8472, the
	// Linux kernel's port), which firewalls for Kubernetes nodes already
	// open.
	vxlanVNI  = 1
	vxlanPort = 8472
	// vxlanOverhead is what the outer IPv4, UDP and VXLAN headers and the
	// inner Ethernet header take from the parent link's MTU.
	vxlanOverhead = 50
)

// vtep is a node's tunnel endpoint: the network address of its pod range
// and a MAC made of it (locally administered), so that every node can
// compute every other node's without anything published in the API.
func vtep(podCIDR *net.IPNet) (net.IP, net.HardwareAddr) {
	ip := podCIDR.IP.To4()
	return ip, net.HardwareAddr{0x0e, 0x53, ip[0], ip[1], ip[2], ip[3]}
}

// ensureVXLAN creates or fixes the tunnel device: local is this node's
// address (the outer source), own its pod range.
func ensureVXLAN(local net.IP, own *net.IPNet) (netlink.Link, error) {
	ip, mac := vtep(own)
	want := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: VXLANDevice, HardwareAddr: mac, MTU: parentMTU(local) - vxlanOverhead},
		VxlanId:   vxlanVNI, SrcAddr: local, Port: vxlanPort, Learning: false,
	}
	link, err := netlink.LinkByName(VXLANDevice)
	if err == nil {
		if vx, ok := link.(*netlink.Vxlan); !ok || vx.VxlanId != vxlanVNI || !vx.SrcAddr.Equal(local) || vx.Port != vxlanPort || vx.HardwareAddr.String() != mac.String() {
			// Made for another address or pod range: start over.
			if err := netlink.LinkDel(link); err != nil {
				return nil, fmt.Errorf("replace %s: %w", VXLANDevice, err)
			}
			link = nil
		}
	} else if !errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil, fmt.Errorf("look up %s: %w", VXLANDevice, err)
	} else {
		link = nil
	}
	if link == nil {
		if err := netlink.LinkAdd(want); err != nil {
			return nil, fmt.Errorf("create %s (VNI %d, UDP %d, local %s): %w", VXLANDevice, vxlanVNI, vxlanPort, local, err)
		}
		if link, err = netlink.LinkByName(VXLANDevice); err != nil {
			return nil, fmt.Errorf("look up %s: %w", VXLANDevice, err)
		}
	}
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(32, 32)}}); err != nil {
		return nil, fmt.Errorf("address %s on %s: %w", ip, VXLANDevice, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("bring %s up: %w", VXLANDevice, err)
	}
	// A node may route to a peer host-gw while the peer tunnels back:
	// replies then arrive on this device from a range routed elsewhere,
	// which strict reverse-path filtering would drop.
	rpf := filepath.Join("/proc/sys/net/ipv4/conf", VXLANDevice, "rp_filter")
	if err := os.WriteFile(rpf, []byte("2"), 0o644); err != nil {
		return nil, fmt.Errorf("loose reverse-path filtering on %s: %w", VXLANDevice, err)
	}
	return link, nil
}

// parentMTU is the MTU of the link that holds local, or 1500.
func parentMTU(local net.IP) int {
	links, err := netlink.LinkList()
	if err != nil {
		return 1500
	}
	for _, l := range links {
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if a.IP.Equal(local) {
				return l.Attrs().MTU
			}
		}
	}
	return 1500
}

// tunnelTo programs what reaching peer's pod range through the tunnel
// takes: the peer's tunnel endpoint in the neighbour table (its MAC), the
// MAC in the forwarding database (behind the peer's address), and the
// route to its range via its endpoint.
func tunnelTo(link netlink.Link, peerIP net.IP, peerCIDR *net.IPNet) error {
	ip, mac := vtep(peerCIDR)
	idx := link.Attrs().Index
	if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: ip, HardwareAddr: mac}); err != nil {
		return fmt.Errorf("neighbour %s on %s: %w", ip, VXLANDevice, err)
	}
	if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT, IP: peerIP, HardwareAddr: mac}); err != nil {
		return fmt.Errorf("forwarding entry %s -> %s on %s: %w", mac, peerIP, VXLANDevice, err)
	}
	rt := &netlink.Route{Dst: peerCIDR, Gw: ip, LinkIndex: idx, Flags: int(netlink.FLAG_ONLINK), Protocol: RouteProtocol}
	if err := netlink.RouteReplace(rt); err != nil {
		return fmt.Errorf("route %s via %s dev %s: %w", peerCIDR, ip, VXLANDevice, err)
	}
	return nil
}

// pruneTunnel removes the neighbour and forwarding entries of peers that
// are gone (keep holds the MACs of the ones that stay).
func pruneTunnel(link netlink.Link, keep map[string]bool) error {
	var errs []error
	for _, family := range []int{unix.AF_INET, unix.AF_BRIDGE} {
		neighs, err := netlink.NeighList(link.Attrs().Index, family)
		if err != nil {
			errs = append(errs, fmt.Errorf("list neighbours on %s: %w", VXLANDevice, err))
			continue
		}
		for _, n := range neighs {
			if n.State&netlink.NUD_PERMANENT == 0 || n.HardwareAddr == nil || keep[n.HardwareAddr.String()] {
				continue
			}
			if err := netlink.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("remove neighbour %s on %s: %w", n.IP, VXLANDevice, err))
			}
		}
	}
	return errors.Join(errs...)
}

// RemoveVXLAN deletes the tunnel device (and with it its routes and
// entries) when the node stops.
func RemoveVXLAN() error {
	link, err := netlink.LinkByName(VXLANDevice)
	if err != nil {
		return nil
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("remove %s: %w", VXLANDevice, err)
	}
	return nil
}

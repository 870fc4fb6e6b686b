// Package testnet makes "hosts" on one machine for multi-node tests and
// benchmarks: a switch (a bridge in a network namespace of its own, so
// that no host's firewall or connection tracking sees the frames it
// passes between others), the root network namespace (where the server
// runs) wired to it by a veth pair, and per host a network namespace
// wired the same way, with its own address. Nothing leaves the
// namespaces it made.
package testnet

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Net is the switch and its hosts.
type Net struct {
	// bridge names the switch's namespace, its bridge and the root
	// namespace's link to it.
	bridge string
	// prefix is the /24's first three octets; .1 is the root namespace.
	prefix string
	hosts  []string
}

// New makes the switch and links the root namespace to it with
// prefix.1/24. Close removes it and every host.
func New(bridge, prefix string) (*Net, error) {
	n := &Net{bridge: bridge, prefix: prefix}
	// Left by a run that was killed, they would make "add" fail.
	n.Close()
	for _, args := range [][]string{
		{"netns", "add", bridge},
		{"-n", bridge, "link", "add", bridge, "type", "bridge"},
		{"-n", bridge, "link", "set", bridge, "up"},
		{"link", "add", bridge, "type", "veth", "peer", "name", "uplink", "netns", bridge},
		{"-n", bridge, "link", "set", "uplink", "master", bridge, "up"},
		{"addr", "add", n.RootIP() + "/24", "dev", bridge},
		{"link", "set", bridge, "up"},
	} {
		if err := run("ip", args...); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// RootIP is the root namespace's address on the bridge: the server's
// node IP.
func (n *Net) RootIP() string { return n.prefix + ".1" }

// AddHost makes a network namespace called name with address
// prefix.<index+2>, a default route via the root namespace, and returns
// the address.
func (n *Net) AddHost(name string) (string, error) {
	ip := fmt.Sprintf("%s.%d", n.prefix, len(n.hosts)+2)
	_ = exec.Command("ip", "netns", "del", name).Run()
	n.hosts = append(n.hosts, name)
	veth := "v" + name
	for _, args := range [][]string{
		{"netns", "add", name},
		{"-n", n.bridge, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name},
		{"-n", n.bridge, "link", "set", veth, "master", n.bridge, "up"},
		{"-n", name, "addr", "add", ip + "/24", "dev", "eth0"},
		{"-n", name, "link", "set", "eth0", "up"},
		{"-n", name, "link", "set", "lo", "up"},
		{"-n", name, "route", "add", "default", "via", n.RootIP()},
	} {
		if err := run("ip", args...); err != nil {
			return "", err
		}
	}
	return ip, nil
}

// Command runs name inside host's network namespace, and only that:
// nsenter --net keeps the mount namespace and /sys, which the kubelet and
// runc need (`ip netns exec` would remount /sys).
func (n *Net) Command(host, name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + host, name}, args...)...)
}

// Close removes the hosts' namespaces and the switch (its namespace, and
// with it every link to it). Processes still running in a namespace keep
// it alive: stop them first.
func (n *Net) Close() {
	for _, h := range n.hosts {
		_ = exec.Command("ip", "netns", "del", h).Run()
	}
	_ = exec.Command("ip", "netns", "del", n.bridge).Run()
	_ = exec.Command("ip", "link", "del", n.bridge).Run()
}

func run(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return errors.New(name + " " + strings.Join(args, " ") + ": " + err.Error() + ": " + strings.TrimSpace(string(out)))
	}
	return nil
}

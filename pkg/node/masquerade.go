package node

import (
	"fmt"

	utiliptables "k8s.io/kubernetes/pkg/util/iptables"
)

// masqueradeChain holds the node's pod egress NAT rules.
const masqueradeChain utiliptables.Chain = "STRATA-POSTROUTING"

// EnsureMasquerade NATs traffic from the node's pods to anything outside
// the cluster's pod range (the node's own network, the internet) to the
// node's address, and leaves pod-to-pod traffic between nodes untouched, as
// the Kubernetes network model asks. The rules go in one iptables-restore,
// which replaces the chain whole, so a changed range leaves nothing stale.
func (n *Network) EnsureMasquerade() error {
	ipt := utiliptables.New(utiliptables.ProtocolIPv4)
	rules := fmt.Sprintf("*nat\n:%[1]s - [0:0]\n"+
		"-A %[1]s -s %[2]s -d %[3]s -m comment --comment \"strata: pod to pod, no NAT\" -j RETURN\n"+
		"-A %[1]s -s %[2]s ! -d 224.0.0.0/4 -m comment --comment \"strata: pod egress\" -j MASQUERADE\n"+
		"COMMIT\n", masqueradeChain, n.PodCIDR, n.ClusterCIDR)
	if err := ipt.RestoreAll([]byte(rules), utiliptables.NoFlushTables, utiliptables.NoRestoreCounters); err != nil {
		return fmt.Errorf("pod masquerade rules: %w", err)
	}
	if _, err := ipt.EnsureRule(utiliptables.Append, utiliptables.TableNAT, utiliptables.ChainPostrouting,
		"-m", "comment", "--comment", "strata pod egress", "-j", string(masqueradeChain)); err != nil {
		return fmt.Errorf("pod masquerade jump: %w", err)
	}
	return nil
}

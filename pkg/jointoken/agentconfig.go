package jointoken

import (
	"context"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// AgentConfigName is the ConfigMap in kube-system that tells agents what
// the server decided for the whole cluster, readable by nodes.
const AgentConfigName = "strata-agent-config"

// AgentConfig is what every node must agree on with the server. Agents
// read it with their node credentials once they have them, so none of it
// is a flag an operator could get wrong.
type AgentConfig struct {
	ClusterCIDR   string
	ServiceCIDR   string
	ClusterDNS    string
	ClusterDomain string
	// RegistryName is how images in the cluster registry are named
	// (localhost:PORT); RegistryPull is where other nodes pull them
	// (TLS, the cluster CA), or "" when the server offers no pulls.
	RegistryName, RegistryPull string
	// SandboxImage is the pod sandbox (pause) image.
	SandboxImage string
}

// ConfigMap is the config as the server publishes it.
func (a AgentConfig) ConfigMap() *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: AgentConfigName, Namespace: metav1.NamespaceSystem,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "strata"}},
		Data: map[string]string{
			"clusterCIDR": a.ClusterCIDR, "serviceCIDR": a.ServiceCIDR, "clusterDNS": a.ClusterDNS,
			"clusterDomain": a.ClusterDomain, "registryName": a.RegistryName, "registryPull": a.RegistryPull,
			"sandboxImage": a.SandboxImage,
		},
	}
}

// ReadAgentConfig reads and checks the server's AgentConfig.
func ReadAgentConfig(ctx context.Context, cs kubernetes.Interface) (AgentConfig, error) {
	cm, err := cs.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, AgentConfigName, metav1.GetOptions{})
	if err != nil {
		return AgentConfig{}, fmt.Errorf("read the cluster's agent configuration (kube-system/%s): %w", AgentConfigName, err)
	}
	d := cm.Data
	a := AgentConfig{ClusterCIDR: d["clusterCIDR"], ServiceCIDR: d["serviceCIDR"], ClusterDNS: d["clusterDNS"],
		ClusterDomain: d["clusterDomain"], RegistryName: d["registryName"], RegistryPull: d["registryPull"], SandboxImage: d["sandboxImage"]}
	if _, _, err := net.ParseCIDR(a.ClusterCIDR); err != nil {
		return a, fmt.Errorf("kube-system/%s: clusterCIDR %q: %w", AgentConfigName, a.ClusterCIDR, err)
	}
	if net.ParseIP(a.ClusterDNS) == nil {
		return a, fmt.Errorf("kube-system/%s: clusterDNS %q is not an IP address", AgentConfigName, a.ClusterDNS)
	}
	if a.ClusterDomain == "" || a.SandboxImage == "" {
		return a, fmt.Errorf("kube-system/%s: clusterDomain or sandboxImage is empty", AgentConfigName)
	}
	return a, nil
}

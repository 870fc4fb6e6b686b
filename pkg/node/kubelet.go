package node

import (
	"context"
	"fmt"
	"path/filepath"

	"k8s.io/apimachinery/pkg/types"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	kubeletapp "k8s.io/kubernetes/cmd/kubelet/app"
	kubeletoptions "k8s.io/kubernetes/cmd/kubelet/app/options"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	kubeletvalidation "k8s.io/kubernetes/pkg/kubelet/apis/config/validation"
	"k8s.io/kubernetes/pkg/kubelet/certificate/bootstrap"
)

// KubeletConfig is what Strata decides about the kubelet; everything else
// keeps the upstream defaults.
type KubeletConfig struct {
	NodeName string
	NodeIP   string
	RootDir  string
	// CertDir is where the kubelet keeps certificates it generates.
	CertDir         string
	Kubeconfig      string
	ClientCAFile    string
	TLSCertFile     string
	TLSKeyFile      string
	RuntimeEndpoint string
	ClusterDNS      string
	ClusterDomain   string
	NodeLabels      map[string]string
	// Port is the kubelet API port (10250 upstream).
	Port int32
	// BootstrapKubeconfig, when set, is the join token's kubeconfig: the
	// kubelet gets its client certificate through a CSR and rotates it,
	// and asks for its serving certificate the same way (TLSCertFile and
	// TLSKeyFile are then empty).
	BootstrapKubeconfig string
	// CgroupRoot is the parent cgroup of the node's pods ("" is /): two
	// kubelets on one machine need their own.
	CgroupRoot string
	// PodLogsDir is where container logs go ("" is upstream's
	// /var/log/pods): a kubelet removes every log dir there that is not
	// one of its pods', so two kubelets on one machine need their own.
	PodLogsDir string
}

func (k *KubeletConfig) build() (*kubeletoptions.KubeletServer, error) {
	flags := kubeletoptions.NewKubeletFlags()
	flags.KubeConfig = k.Kubeconfig
	flags.HostnameOverride = k.NodeName
	flags.NodeIP = k.NodeIP
	flags.RootDirectory = k.RootDir
	flags.CertDirectory = k.CertDir
	flags.NodeLabels = k.NodeLabels
	flags.BootstrapKubeconfig = k.BootstrapKubeconfig

	cfg, err := kubeletoptions.NewKubeletConfiguration()
	if err != nil {
		return nil, fmt.Errorf("kubelet defaults: %w", err)
	}
	// Environment facts (see docs): cgroup v1 hosts, cgroupfs, possible swap.
	cfg.FailCgroupV1 = false
	cfg.CgroupDriver = "cgroupfs"
	cfg.FailSwapOn = false
	cfg.ContainerRuntimeEndpoint = k.RuntimeEndpoint
	cfg.ImageServiceEndpoint = k.RuntimeEndpoint
	cfg.ClusterDNS = []string{k.ClusterDNS}
	cfg.ClusterDomain = k.ClusterDomain
	cfg.Address = k.NodeIP
	cfg.Port = k.Port
	cfg.ReadOnlyPort = 0
	cfg.HealthzBindAddress = "127.0.0.1"
	cfg.TLSCertFile = k.TLSCertFile
	cfg.TLSPrivateKeyFile = k.TLSKeyFile
	if k.BootstrapKubeconfig != "" {
		cfg.RotateCertificates = true
		cfg.ServerTLSBootstrap = true
	}
	if k.CgroupRoot != "" {
		cfg.CgroupRoot = k.CgroupRoot
	}
	if k.PodLogsDir != "" {
		cfg.PodLogsDir = k.PodLogsDir
	}
	cfg.Authentication.Anonymous.Enabled = false
	cfg.Authentication.Webhook.Enabled = true
	cfg.Authentication.X509.ClientCAFile = k.ClientCAFile
	cfg.Authorization.Mode = kubeletconfig.KubeletAuthorizationModeWebhook
	// An edge node has small disks; evict only when they are nearly full
	// instead of at the upstream 10-15%.
	cfg.EvictionHard = map[string]string{
		"memory.available":  "100Mi",
		"nodefs.available":  "2%",
		"imagefs.available": "2%",
	}
	// Report status quickly so a new node turns Ready within seconds.
	cfg.NodeStatusUpdateFrequency.Duration = cfg.NodeStatusUpdateFrequency.Duration / 2

	if err := kubeletvalidation.ValidateKubeletConfiguration(cfg, utilfeature.DefaultFeatureGate); err != nil {
		return nil, fmt.Errorf("kubelet configuration: %w", err)
	}
	return &kubeletoptions.KubeletServer{KubeletFlags: *flags, KubeletConfiguration: *cfg}, nil
}

// BootstrapClientCert gets the kubelet's client certificate with the
// bootstrap kubeconfig, as the kubelet does at start (upstream's own code),
// and writes kubeconfig for it: a node credential the agent's other parts
// use before the kubelet runs. A valid one already there is kept.
func BootstrapClientCert(ctx context.Context, kubeconfig, bootstrapKubeconfig, certDir, nodeName string) error {
	if err := bootstrap.LoadClientCert(ctx, kubeconfig, bootstrapKubeconfig, certDir, types.NodeName(nodeName)); err != nil {
		return fmt.Errorf("node client certificate: %w", err)
	}
	return nil
}

// KubeletClientCert is the kubelet's current client certificate and key,
// one PEM file that the kubelet replaces when it rotates them (upstream's
// certificate store name).
func KubeletClientCert(certDir string) string {
	return filepath.Join(certDir, "kubelet-client-current.pem")
}

// RunKubelet runs the kubelet until ctx is done.
func RunKubelet(ctx context.Context, k *KubeletConfig) error {
	s, err := k.build()
	if err != nil {
		return err
	}
	if err := kubeletoptions.ValidateKubeletFlags(&s.KubeletFlags); err != nil {
		return fmt.Errorf("kubelet flags: %w", err)
	}
	deps, err := kubeletapp.UnsecuredDependencies(ctx, s, utilfeature.DefaultFeatureGate)
	if err != nil {
		return fmt.Errorf("kubelet dependencies: %w", err)
	}
	if err := kubeletapp.Run(ctx, s, deps, utilfeature.DefaultFeatureGate); err != nil {
		return fmt.Errorf("kubelet: %w", err)
	}
	return nil
}

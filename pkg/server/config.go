// Package server wires the parts of `strata server` together: control
// plane, registry, cluster DNS and, unless disabled, the node.
package server

import (
	"fmt"
	"io"
	"k8s.io/apimachinery/pkg/api/resource"
	"net"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/strata-dev/strata/pkg/admission/imagepolicy"
	"github.com/strata-dev/strata/pkg/controlplane"
	"github.com/strata-dev/strata/pkg/layout"
	"github.com/strata-dev/strata/pkg/node"
	"github.com/strata-dev/strata/pkg/serverless"
)

// Config is `strata server`'s configuration; flags map onto it one to one.
type Config struct {
	DataDir      string
	DisableAgent bool
	// Vanilla runs upstream Kubernetes only: none of Strata's extensions
	// (admission webhooks, CRDs, Functions, GPU driver and scheduler
	// plugins, wasm runtime), as a stand-in for someone else's cluster.
	Vanilla       bool
	BindAddress   string
	APIPort       int
	EtcdPort      int
	RegistryPort  int
	KubeletPort   int
	DNSPort       int
	ClusterCIDR   string
	ServiceCIDR   string
	ClusterDomain string
	NodeName      string
	// NodeIP is the node's address, which other nodes route to and the
	// API server advertises; "" uses the pod bridge's address, which only
	// suits a single node.
	NodeIP string
	// NodeCIDRMaskSize is the size of each node's pod range.
	NodeCIDRMaskSize int
	// VXLAN says when pods' traffic to other nodes is tunnelled
	// (node.VXLANAuto, VXLANAlways, VXLANNever).
	VXLAN string
	// NodeMonitorGrace is how long a silent node stays Ready; NodeGrace how
	// long its pods then stay before they are evicted and recreated.
	NodeMonitorGrace, NodeGrace time.Duration
	Bridge                      string
	Containerd                  string
	CNIBinDir                   string
	PauseBinary                 string
	TLSSANs                     []string
	// PodSecurity is the Pod Security level for namespaces without labels.
	PodSecurity string
	// Profiling serves /debug/pprof on the API server (to cluster admins).
	// The control plane shares one process, so the profiles cover etcd,
	// the scheduler, the controllers and the node as well.
	Profiling bool
	// FeatureGates are Kubernetes feature gates (A=true,B=false) for
	// every component, after Strata's controlplane.DefaultFeatureGates.
	FeatureGates string
	// WebhookPort is where the admission webhooks listen, on loopback.
	WebhookPort int
	// UnmatchedImages is deny, warn or allow: images no ClusterImagePolicy
	// covers.
	UnmatchedImages string
	// ImageVerifyTimeout bounds the registry work of one admission.
	ImageVerifyTimeout time.Duration
	// ImageCacheTTL is how long a verified digest is remembered.
	ImageCacheTTL time.Duration
	// GatewayPort is the functions' HTTP gateway port (on BindAddress).
	GatewayPort int
	// FunctionDomain is the functions' host name suffix.
	FunctionDomain string
	// MinFreeDisk is the free space of the data dir's file system below
	// which the server refuses writes (a quantity, e.g. 256Mi; 0 turns
	// the guard off).
	MinFreeDisk string
	// GatewaySecurity is the gateway's TLS and authentication.
	GatewaySecurity serverless.Security
	// MetricsPort serves Strata's Prometheus metrics on loopback.
	MetricsPort int
	// GPUBackend is auto, nvml or simulated (see pkg/dra).
	GPUBackend string
	// SimulatedGPUs / SimulatedGPUsFile give a simulated GPU inventory,
	// e.g. 4xA100-80GB.
	SimulatedGPUs, SimulatedGPUsFile string
	// Verbosity is klog's -v for the components' log file.
	Verbosity int
	// GCPercent is the Go GC target of the server process (as GOGC); 0
	// keeps GOGC from the environment.
	GCPercent int
	// MemoryLimit is the process's soft memory limit (as GOMEMLIMIT), a
	// Kubernetes quantity such as 1Gi; "" keeps the environment's.
	MemoryLimit string

	// Faults injects component failures for the end-to-end tests of the
	// supervisor's policies (supervise.FaultsEnv); empty in normal use.
	Faults string

	// Out receives progress lines for the person who started the server.
	Out io.Writer
}

// MinFreeDiskBytes is --min-free-disk in bytes.
func (c *Config) MinFreeDiskBytes() (int64, error) {
	q, err := resource.ParseQuantity(c.MinFreeDisk)
	if err != nil || q.Sign() < 0 {
		return 0, fmt.Errorf("--min-free-disk %q is not a size: use e.g. 256Mi or 1Gi, or 0 to never refuse writes", c.MinFreeDisk)
	}
	return q.Value(), nil
}

// Defaults returns the configuration used when no flag is given.
func Defaults() Config {
	host, _ := os.Hostname()
	return Config{
		DataDir:       layout.DefaultDataDir,
		BindAddress:   "0.0.0.0",
		APIPort:       6443,
		EtcdPort:      2379,
		RegistryPort:  5000,
		KubeletPort:   10250,
		DNSPort:       53,
		ClusterCIDR:   "10.88.0.0/16",
		ServiceCIDR:   "10.96.0.0/16",
		ClusterDomain: "cluster.local",
		NodeName:      host,
		// Upstream's defaults: kube-controller-manager's
		// --node-monitor-grace-period and the DefaultTolerationSeconds
		// admission plugin's 300 s.
		NodeCIDRMaskSize: 24,
		VXLAN:            node.VXLANAuto,
		NodeMonitorGrace: 50 * time.Second,
		NodeGrace:        5 * time.Minute,
		Bridge:           "strata0",
		PodSecurity:      "restricted",
		WebhookPort:      9443,
		GatewayPort:      8088,
		MetricsPort:      9464,

		FunctionDomain: "localhost",
		MinFreeDisk:    "256Mi",
		GPUBackend:     "auto",
		GCPercent:      DefaultGCPercent,

		UnmatchedImages:    string(imagepolicy.UnmatchedDeny),
		ImageVerifyTimeout: imagepolicy.DefaultOptions().Timeout,
		ImageCacheTTL:      imagepolicy.DefaultOptions().CacheTTL,
		Out:                os.Stderr,
	}
}

// RegistryHost is how images in the embedded registry are named.
func (c *Config) RegistryHost() string { return fmt.Sprintf("localhost:%d", c.RegistryPort) }

// PauseImage is the pod sandbox image, built at start from strata-pause.
func (c *Config) PauseImage() string { return c.RegistryHost() + "/strata/pause:3.10" }

// Validate checks flag values before anything is started.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("--data-dir is empty: give a directory for the cluster state, e.g. --data-dir /var/lib/strata")
	}
	if net.ParseIP(c.BindAddress) == nil {
		return fmt.Errorf("--bind-address %q is not an IP address: use e.g. 0.0.0.0 or 127.0.0.1", c.BindAddress)
	}
	for _, p := range []struct {
		flag string
		v    int
	}{{"--https-port", c.APIPort}, {"--etcd-port", c.EtcdPort}, {"--registry-port", c.RegistryPort}, {"--kubelet-port", c.KubeletPort}, {"--dns-port", c.DNSPort}, {"--webhook-port", c.WebhookPort}, {"--gateway-port", c.GatewayPort}, {"--metrics-port", c.MetricsPort}} {
		if p.v < 1 || p.v > 65535 {
			return fmt.Errorf("%s %d is out of range: use a port from 1 to 65535", p.flag, p.v)
		}
	}
	for _, c := range []struct{ flag, v string }{{"--cluster-cidr", c.ClusterCIDR}, {"--service-cidr", c.ServiceCIDR}} {
		ip, _, err := net.ParseCIDR(c.v)
		if err != nil || ip.To4() == nil {
			return fmt.Errorf("%s %q is not an IPv4 CIDR: use e.g. 10.88.0.0/16", c.flag, c.v)
		}
	}
	if c.NodeIP != "" {
		if ip := net.ParseIP(c.NodeIP); ip == nil || ip.To4() == nil || ip.IsLoopback() || ip.IsUnspecified() {
			return fmt.Errorf("--node-ip %q is not a usable IPv4 address: give this machine's address on the network the agents share, e.g. 192.168.1.10", c.NodeIP)
		}
	}
	if err := node.ValidateVXLANMode(c.VXLAN); err != nil {
		return err
	}
	if _, err := node.FirstSubnet(c.ClusterCIDR, c.NodeCIDRMaskSize); err != nil {
		return fmt.Errorf("--node-cidr-mask-size: %w", err)
	}
	// The kubelet renews its node lease every 10 s: a shorter grace would
	// mark healthy nodes NotReady between two renewals.
	if c.NodeMonitorGrace < 15*time.Second {
		return fmt.Errorf("--node-monitor-grace %s is too short: kubelets renew their lease every 10s, so use at least 15s (upstream's default is 50s)", c.NodeMonitorGrace)
	}
	if c.NodeGrace < 0 {
		return fmt.Errorf("--node-grace %s is negative: give how long pods stay on a lost node before they are evicted, e.g. 5m", c.NodeGrace)
	}
	if err := controlplane.ValidatePodSecurityLevel(c.PodSecurity); err != nil {
		return err
	}
	if err := controlplane.ValidateFeatureGates(c.FeatureGates); err != nil {
		return err
	}
	if _, err := imagepolicy.ParseUnmatched(c.UnmatchedImages); err != nil {
		return fmt.Errorf("--%w", err)
	}
	if err := imagepolicy.CheckTimeout(c.ImageVerifyTimeout); err != nil {
		return err
	}
	if c.ImageCacheTTL < 0 {
		return fmt.Errorf("--image-cache-ttl %s is negative: use 0 to disable the cache, or e.g. 5m", c.ImageCacheTTL)
	}
	if errs := validation.IsDNS1123Subdomain(c.FunctionDomain); len(errs) > 0 {
		return fmt.Errorf("--function-domain %q: %s; use a DNS name such as localhost or fn.example.com", c.FunctionDomain, strings.Join(errs, "; "))
	}
	if _, err := c.MinFreeDiskBytes(); err != nil {
		return err
	}
	if err := c.GatewaySecurity.Validate(); err != nil {
		return err
	}
	switch c.GPUBackend {
	case "auto", "nvml", "simulated":
	default:
		return fmt.Errorf("--gpu-backend %q: use auto (NVML if present, else --simulated-gpus), nvml or simulated", c.GPUBackend)
	}
	if c.Vanilla && (c.SimulatedGPUs != "" || c.SimulatedGPUsFile != "" || c.GPUBackend == "nvml") {
		return fmt.Errorf("--vanilla runs no GPU driver: drop --vanilla, or the GPU flags (--simulated-gpus, --gpu-backend nvml)")
	}
	if err := c.validateGC(); err != nil {
		return err
	}
	if c.NodeName == "" {
		return fmt.Errorf("--node-name is empty and the hostname is unknown: pass --node-name")
	}
	l, err := layout.New(c.DataDir)
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	c.DataDir = l.DataDir
	return nil
}

// Layout is the data dir's layout; Validate has made DataDir absolute.
func (c *Config) Layout() layout.Layout { return layout.Layout{DataDir: c.DataDir} }

package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"
	proxyapp "k8s.io/kubernetes/cmd/kube-proxy/app"
)

// ProxyConfig configures kube-proxy in iptables mode.
type ProxyConfig struct {
	Kubeconfig  string
	NodeName    string
	ClusterCIDR string
	// HealthzPort and MetricsPort listen on loopback.
	HealthzPort, MetricsPort int
}

// RunProxy runs kube-proxy until ctx is done.
func RunProxy(ctx context.Context, p *ProxyConfig) error {
	opts := proxyapp.NewOptions()
	fs := pflag.NewFlagSet("kube-proxy", pflag.ContinueOnError)
	opts.AddFlags(fs)
	args := []string{
		"--kubeconfig=" + p.Kubeconfig,
		"--hostname-override=" + p.NodeName,
		"--cluster-cidr=" + p.ClusterCIDR,
		"--proxy-mode=iptables",
		fmt.Sprintf("--healthz-bind-address=127.0.0.1:%d", p.HealthzPort),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", p.MetricsPort),
		// Do not touch the host's conntrack table sizing: the machine may not
		// allow it, and the kernel defaults serve a single node.
		"--conntrack-max-per-core=0",
		"--profiling=false",
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("kube-proxy flags: %w", err)
	}
	if err := opts.Complete(fs); err != nil {
		return fmt.Errorf("kube-proxy options: %w", err)
	}
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("kube-proxy options: %w", err)
	}
	// Upstream's run loop returns only on an error, and its informers run
	// with wait.NeverStop: when ctx ends, stop waiting for it. Its rules
	// stay in place for the next start, as with a kube-proxy restart.
	errc := make(chan error, 1)
	go func() { errc <- opts.Run(ctx) }()
	select {
	case err := <-errc:
		if err == nil {
			return errors.New("kube-proxy stopped")
		}
		return fmt.Errorf("kube-proxy: %w", err)
	case <-ctx.Done():
		return nil
	}
}

package controlplane

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/klog/v2"
)

// RunEtcd runs a single-member etcd under the data dir with mutual TLS on
// loopback, so that only holders of a cluster certificate reach the state.
// It calls ready once etcd serves, and returns when ctx ends (after closing
// etcd, which flushes its WAL) or when etcd fails.
func RunEtcd(ctx context.Context, c *Config, ready func()) error {
	e, err := embed.StartEtcd(c.etcdConfig())
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
		klog.InfoS("etcd is ready", "dir", c.Layout.EtcdDir())
	case err := <-e.Err():
		return fmt.Errorf("start etcd: %w", err)
	case <-time.After(60 * time.Second):
		return fmt.Errorf("start etcd: not ready after 60s (see %s)", c.Layout.EtcdLog())
	case <-ctx.Done():
		return nil
	}
	ready()
	select {
	case err := <-e.Err():
		return fmt.Errorf("etcd: %w", err)
	case <-e.Server.StopNotify():
		return fmt.Errorf("etcd stopped on its own (see %s)", c.Layout.EtcdLog())
	case <-ctx.Done():
		return nil
	}
}

func (c *Config) etcdConfig() *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = "strata"
	cfg.Dir = c.Layout.EtcdDir()
	client := url.URL{Scheme: "https", Host: c.EtcdEndpoint()}
	peer := url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", c.EtcdPort+1)}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ClientTLSInfo = transport.TLSInfo{
		CertFile:       c.certs.etcdServer.CertFile,
		KeyFile:        c.certs.etcdServer.KeyFile,
		TrustedCAFile:  c.certs.etcdCA.CertFile,
		ClientCertAuth: true,
	}
	cfg.PeerTLSInfo = cfg.ClientTLSInfo
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{c.Layout.EtcdLog()}
	// Compact history every hour, as kube-apiserver itself would ask for,
	// so a long-running edge node does not grow its database without bound.
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	cfg.QuotaBackendBytes = 2 << 30
	return cfg
}

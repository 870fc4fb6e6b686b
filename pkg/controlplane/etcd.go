package controlplane

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/klog/v2"
)

// Etcd is the embedded etcd member that stores the cluster state.
type Etcd struct {
	e *embed.Etcd
}

// StartEtcd starts a single-member etcd under DATA/etcd with mutual TLS on
// loopback, so that only holders of a cluster certificate reach the state.
func StartEtcd(ctx context.Context, c *Config) (*Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "strata"
	cfg.Dir = filepath.Join(c.DataDir, "etcd")
	client := url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", c.EtcdPort)}
	peer := url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", c.EtcdPort+1)}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ClientTLSInfo = transport.TLSInfo{
		CertFile:       c.certs.etcdServer.CertFile,
		KeyFile:        c.certs.etcdServer.KeyFile,
		TrustedCAFile:  c.certs.ca.CertFile,
		ClientCertAuth: true,
	}
	cfg.PeerTLSInfo = cfg.ClientTLSInfo
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{filepath.Join(c.DataDir, "logs", "etcd.log")}
	// Compact history every hour, as kube-apiserver itself would ask for,
	// so a long-running edge node does not grow its database without bound.
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	cfg.QuotaBackendBytes = 2 << 30

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
		klog.InfoS("etcd is ready", "dir", cfg.Dir)
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("start etcd: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("start etcd: not ready after 60s (see %s)", cfg.LogOutputs[0])
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	return &Etcd{e: e}, nil
}

// Endpoint is the client URL for kube-apiserver.
func (e *Etcd) Endpoint() string { return e.e.Clients[0].Addr().String() }

// Err reports a fatal etcd error.
func (e *Etcd) Err() <-chan error { return e.e.Err() }

// Close stops etcd after in-flight requests, flushing its WAL.
func (e *Etcd) Close() { e.e.Close() }

package controlplane

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"

	certutil "k8s.io/client-go/util/cert"

	"github.com/strata-dev/strata/pkg/controlplane/pki"
	"github.com/strata-dev/strata/pkg/layout"
)

// etcd has a CA of its own, and a data dir from before it had one moves
// over: its etcd certificates, signed by the cluster CA, are re-issued.
func TestEnsurePKIGivesEtcdItsOwnCA(t *testing.T) {
	c := &Config{Layout: layout.Layout{DataDir: t.TempDir()}, ServiceCIDR: "10.96.0.0/16", NodeName: "n1",
		AdvertiseAddress: net.IPv4(127, 0, 0, 1), ClusterDomain: "cluster.local", APIPort: 6443}
	dir := c.PKIDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadOrCreateCA(dir, "ca", "strata-ca")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"etcd-server", "apiserver-etcd-client"} {
		if _, err := ca.Issue(dir, pki.Cert{Name: name, CommonName: name, Server: true, Client: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.EnsurePKI(); err != nil {
		t.Fatal(err)
	}
	pool := func(file string) *x509.CertPool {
		p, err := certutil.NewPool(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	clusterCA, etcdCA := pool("ca.crt"), pool("etcd-ca.crt")
	verifies := func(name string, roots *x509.CertPool) bool {
		certs, err := certutil.CertsFromFile(filepath.Join(dir, name+".crt"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = certs[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err == nil
	}
	for _, tt := range []struct {
		cert              string
		byCluster, byEtcd bool
	}{
		{"etcd-server", false, true},
		{"apiserver-etcd-client", false, true},
		// Every other client certificate is the cluster CA's, which etcd
		// does not trust: not even the administrator's opens etcd.
		{"admin", true, false},
		{"kubelet", true, false},
		{"apiserver", true, false},
	} {
		if got := verifies(tt.cert, clusterCA); got != tt.byCluster {
			t.Errorf("%s verifies with the cluster CA: %v, want %v", tt.cert, got, tt.byCluster)
		}
		if got := verifies(tt.cert, etcdCA); got != tt.byEtcd {
			t.Errorf("%s verifies with etcd's CA: %v, want %v", tt.cert, got, tt.byEtcd)
		}
	}
	if got := c.etcdConfig().ClientTLSInfo.TrustedCAFile; got != filepath.Join(dir, "etcd-ca.crt") {
		t.Errorf("etcd trusts %s, want etcd-ca.crt", got)
	}
}

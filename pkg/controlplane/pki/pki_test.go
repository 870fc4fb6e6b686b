package pki

import (
	"bytes"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"

	certutil "k8s.io/client-go/util/cert"
)

func TestCAIsCreatedOnceAndReused(t *testing.T) {
	dir := t.TempDir()
	ca1, err := LoadOrCreateCA(dir, "ca", "test-ca")
	if err != nil {
		t.Fatal(err)
	}
	ca2, err := LoadOrCreateCA(dir, "ca", "test-ca")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca1.Cert.Raw, ca2.Cert.Raw) {
		t.Fatal("second start made a new CA; every issued certificate would be invalidated")
	}
	if !ca1.Cert.IsCA {
		t.Fatal("CA certificate is not a CA")
	}
	if st, _ := os.Stat(ca1.KeyFile); st.Mode().Perm() != 0o600 {
		t.Fatalf("CA key mode %v, want 0600", st.Mode().Perm())
	}
}

func TestIssue(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir, "ca", "test-ca")
	if err != nil {
		t.Fatal(err)
	}
	base := Cert{Name: "srv", CommonName: "kube-apiserver", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true}
	tests := []struct {
		name      string
		cert      Cert
		wantReuse bool
	}{
		{"first issue", base, false},
		{"same request reuses", base, true},
		{"new SAN reissues", func() Cert { c := base; c.DNSNames = []string{"localhost", "api.example"}; return c }(), false},
		{"new common name reissues", func() Cert { c := base; c.CommonName = "other"; return c }(), false},
	}
	var prev []byte
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ca.Issue(dir, tc.cert)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(p.CertFile)
			if reused := bytes.Equal(raw, prev); reused != tc.wantReuse {
				t.Fatalf("reused=%v, want %v", reused, tc.wantReuse)
			}
			prev = raw
			certs, err := certutil.CertsFromFile(p.CertFile)
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca.Cert)
			for _, name := range tc.cert.DNSNames {
				if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
					t.Errorf("verify %s: %v", name, err)
				}
			}
		})
	}
}

func TestIssueFromAnotherCAIsReplaced(t *testing.T) {
	dir := t.TempDir()
	other, _ := LoadOrCreateCA(filepath.Join(dir, "other"), "ca", "other")
	c := Cert{Name: "client", CommonName: "admin", Client: true}
	if _, err := other.Issue(dir, c); err != nil {
		t.Fatal(err)
	}
	ca, _ := LoadOrCreateCA(dir, "ca", "test-ca")
	p, err := ca.Issue(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	certs, _ := certutil.CertsFromFile(p.CertFile)
	if err := certs[0].CheckSignatureFrom(ca.Cert); err != nil {
		t.Fatalf("certificate signed by a foreign CA was kept: %v", err)
	}
}

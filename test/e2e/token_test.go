package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/strata-dev/strata/pkg/jointoken"
)

// Issue 22, first step: join tokens. `strata token create` makes an
// upstream bootstrap token the server accepts, and a join string whose
// pin matches the server's CA; the token gets a node client certificate
// through the kubelet's TLS bootstrap flow; expired and unknown tokens are
// refused.
func TestJoinToken(t *testing.T) {
	s := cluster(t)
	out := strings.TrimSpace(strata(t, "token", "create", "--ttl", "1h", "--description", "e2e", "--data-dir", s.dataDir))
	j, err := jointoken.Parse(out)
	if err != nil {
		t.Fatalf("strata token create printed %q: %v", out, err)
	}
	caPEM, err := os.ReadFile(filepath.Join(s.dataDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Verify(ca); err != nil {
		t.Fatalf("the join string does not pin the server's CA: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	asToken := func(token string) (int, string) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &bearer{token: token, rt: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
		return whoami(t, c)
	}
	if status, user := asToken(j.Token); status != http.StatusCreated || user != "system:bootstrap:"+j.ID() {
		t.Errorf("the new token authenticates as %q (HTTP %d), want system:bootstrap:%s", user, status, j.ID())
	}

	// TLS bootstrap, as a joining kubelet does it: the token asks for a
	// node client certificate; the controller manager approves and signs
	// it; the certificate authenticates as the node.
	cert := bootstrapNodeCert(t, j.Token, caPEM, "e2e-agent")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
	if status, user := whoami(t, c); status != http.StatusCreated || user != "system:node:e2e-agent" {
		t.Errorf("the bootstrapped certificate authenticates as %q (HTTP %d), want system:node:e2e-agent", user, status)
	}

	// An expired token is refused (and the controller manager's
	// tokencleaner deletes it).
	expired := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-old123", Namespace: "kube-system"},
		Type:       "bootstrap.kubernetes.io/token",
		StringData: map[string]string{"token-id": "old123", "token-secret": "0123456789abcdef", "usage-bootstrap-authentication": "true",
			"expiration": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)},
	}
	if _, err := s.client.CoreV1().Secrets("kube-system").Create(context.Background(), expired, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{"old123.0123456789abcdef", "nosuch.0123456789abcdef"} {
		if status, _ := asToken(token); status != http.StatusUnauthorized {
			t.Errorf("token %s: HTTP %d, want 401", token[:6], status)
		}
	}
	waitFor(t, time.Minute, "the tokencleaner to delete the expired token", func(ctx context.Context) (bool, error) {
		_, err := s.client.CoreV1().Secrets("kube-system").Get(ctx, expired.Name, metav1.GetOptions{})
		return err != nil, nil
	})

	// Bad input.
	if out, err := exec.Command(bin("strata"), "token", "create", "--ttl", "-1h", "--data-dir", s.dataDir).CombinedOutput(); err == nil || !strings.Contains(string(out), "a token must expire") {
		t.Errorf("--ttl -1h: %v\n%s", err, out)
	}
	_ = s.client.CoreV1().Secrets("kube-system").Delete(context.Background(), "bootstrap-token-"+j.ID(), metav1.DeleteOptions{})
}

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	rt    http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.rt.RoundTrip(r)
}

// bootstrapNodeCert asks, with a join token, for a client certificate of
// node name (signer kube-apiserver-client-kubelet) and waits for it.
func bootstrapNodeCert(t *testing.T, token string, caPEM []byte, name string) tls.Certificate {
	t.Helper()
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:6443", BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csrFor := func(cn string, orgs ...string) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: orgs}}, key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	newCSR := func(csrName string, req []byte) *certificatesv1.CertificateSigningRequest {
		return &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: csrName},
			Spec: certificatesv1.CertificateSigningRequestSpec{Request: req, SignerName: certificatesv1.KubeAPIServerClientKubeletSignerName,
				Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}}}
	}
	// A token may ask for another identity, but nothing approves that.
	admin, err := cs.CertificatesV1().CertificateSigningRequests().Create(ctx, newCSR("e2e-admin", csrFor("system:admin", "system:masters")), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = shared.client.CertificatesV1().CertificateSigningRequests().Delete(context.Background(), admin.Name, metav1.DeleteOptions{})
	})
	csr, err := cs.CertificatesV1().CertificateSigningRequests().Create(ctx, newCSR("e2e-"+name, csrFor("system:node:"+name, "system:nodes")), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a join token's node CSR: %v", err)
	}
	t.Cleanup(func() {
		_ = shared.client.CertificatesV1().CertificateSigningRequests().Delete(context.Background(), csr.Name, metav1.DeleteOptions{})
	})
	var certPEM []byte
	waitFor(t, 30*time.Second, "the node CSR to be approved and signed", func(ctx context.Context) (bool, error) {
		got, err := shared.client.CertificatesV1().CertificateSigningRequests().Get(ctx, csr.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		certPEM = got.Status.Certificate
		return len(certPEM) > 0, nil
	})
	// The approver has seen both by now (it works through them in order).
	if got, err := shared.client.CertificatesV1().CertificateSigningRequests().Get(ctx, admin.Name, metav1.GetOptions{}); err != nil || len(got.Status.Conditions) > 0 || len(got.Status.Certificate) > 0 {
		t.Errorf("a join token's CSR for system:masters: %+v %v, want it left pending", got.Status, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

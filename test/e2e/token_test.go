package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/strata-dev/strata/pkg/jointoken"
)

// Issue 22, first step: join tokens. `strata token create` makes an
// upstream bootstrap token the server accepts, and a join string whose
// pin matches the server's CA; expired and unknown tokens are refused.
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

package jointoken

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func testCA(t *testing.T) (*x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestCreateParseVerify(t *testing.T) {
	ca, caPEM := testCA(t)
	cs := fake.NewClientset()
	j, err := Create(context.Background(), cs, caPEM, time.Hour, "agent edge-1")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := Parse(" " + j.String() + "\n")
	if err != nil || parsed != j {
		t.Fatalf("Parse(%s) = %+v, %v", j, parsed, err)
	}
	if err := j.Verify(ca); err != nil {
		t.Errorf("the CA it was made with: %v", err)
	}
	other, _ := testCA(t)
	if err := j.Verify(other); err == nil || !strings.Contains(err.Error(), "is not the one the join token pins") {
		t.Errorf("another CA: %v", err)
	}
	s, err := cs.CoreV1().Secrets("kube-system").Get(context.Background(), "bootstrap-token-"+j.ID(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	exp, err := time.Parse(time.RFC3339, s.StringData["expiration"])
	if s.Type != "bootstrap.kubernetes.io/token" || err != nil || time.Until(exp) < 59*time.Minute || time.Until(exp) > time.Hour ||
		s.StringData["auth-extra-groups"] != AgentGroup || s.StringData["usage-bootstrap-authentication"] != "true" {
		t.Errorf("secret %+v", s)
	}
	if _, err := Create(context.Background(), cs, caPEM, 0, ""); err == nil || !strings.Contains(err.Error(), "a token must expire") {
		t.Errorf("ttl 0: %v", err)
	}
	if _, err := Create(context.Background(), cs, []byte("junk"), time.Hour, ""); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("bad CA: %v", err)
	}
}

func TestParseSaysWhatIsWrong(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for _, tc := range []struct{ in, want string }{
		{"abcdef.0123456789abcdef", "does not start with"},
		{"strata1:sha256:" + hash, "has no token after the CA hash"},
		{"strata1:sha256:abc:abcdef.0123456789abcdef", "not 64 hex digits"},
		{"strata1:sha256:" + hash + ":ABCDEF.0123456789abcdef", "not <6 chars>.<16 chars>"},
	} {
		_, err := Parse(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): %v, want %q", tc.in, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "0123456789abcdef") {
			t.Errorf("Parse(%q) shows the secret: %v", tc.in, err)
		}
	}
}

package controlplane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/group"
	"k8s.io/apiserver/pkg/authentication/request/union"
	x509request "k8s.io/apiserver/pkg/authentication/request/x509"
	"k8s.io/apiserver/pkg/authentication/user"
	testingclock "k8s.io/utils/clock/testing"
)

type testCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCert(t *testing.T, parent *testCert, cn string, notAfter time.Time) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"strata-test"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert, key}
}

// countingAuth counts the requests that reach kube-apiserver's own chain.
type countingAuth struct {
	inner authenticator.Request
	calls atomic.Int32
}

func (c *countingAuth) AuthenticateRequest(req *http.Request) (*authenticator.Response, bool, error) {
	c.calls.Add(1)
	return c.inner.AuthenticateRequest(req)
}

// TestCertCache checks the cache against kube-apiserver's own chain (the
// client certificate authenticator, then a token one, under the group
// adder): a hit answers as the chain would, and every case where the
// chain could answer differently reaches it.
func TestCertCache(t *testing.T) {
	now := time.Now()
	year := now.Add(365 * 24 * time.Hour)
	ca := newTestCert(t, nil, "strata-ca", year)
	otherCA := newTestCert(t, nil, "other-ca", year)
	scheduler := newTestCert(t, ca, "system:kube-scheduler", year)
	soon := newTestCert(t, ca, "soon", now.Add(30*time.Second))
	foreign := newTestCert(t, otherCA, "system:kube-scheduler", year)
	noName := newTestCert(t, ca, "", year)

	pool := func() *x509.CertPool {
		p := x509.NewCertPool()
		p.AddCert(ca.cert)
		return p
	}
	var roots atomic.Pointer[x509.CertPool]
	roots.Store(pool())
	verify := func() (x509.VerifyOptions, bool) {
		return x509.VerifyOptions{Roots: roots.Load(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, true
	}
	tokens := authenticatorfactory.NewFromTokens(map[string]*user.DefaultInfo{
		"admin-token": {Name: "token-admin"},
	}, nil)

	type call struct {
		cert   *testCert
		token  string
		step   time.Duration // fake clock advance before the call
		rotate bool          // the client CA bundle is reloaded before the call
		user   string        // "" for a failed authentication
		inner  bool          // the request must reach the chain
	}
	tests := []struct {
		name  string
		calls []call
	}{
		{"verified once, then served", []call{
			{cert: scheduler, user: "system:kube-scheduler", inner: true},
			{cert: scheduler, user: "system:kube-scheduler"},
			{cert: scheduler, step: certCacheTTL / 2, user: "system:kube-scheduler"},
		}},
		{"an Authorization header always reaches the chain", []call{
			{cert: scheduler, user: "system:kube-scheduler", inner: true},
			{cert: scheduler, token: "admin-token", user: "system:kube-scheduler", inner: true},
			{cert: foreign, token: "admin-token", user: "token-admin", inner: true},
			{cert: foreign, token: "admin-token", user: "token-admin", inner: true},
		}},
		{"a certificate of another CA is never cached", []call{
			{cert: foreign, inner: true},
			{cert: foreign, inner: true},
		}},
		{"a certificate without a name is never cached", []call{
			{cert: noName, inner: true},
			{cert: noName, inner: true},
		}},
		{"a reloaded client CA bundle verifies again", []call{
			{cert: scheduler, user: "system:kube-scheduler", inner: true},
			{cert: scheduler, rotate: true, user: "system:kube-scheduler", inner: true},
			{cert: scheduler, user: "system:kube-scheduler"},
		}},
		{"an entry lives at most the TTL", []call{
			{cert: scheduler, user: "system:kube-scheduler", inner: true},
			{cert: scheduler, step: certCacheTTL + time.Second, user: "system:kube-scheduler", inner: true},
		}},
		{"an expired certificate is not served", []call{
			{cert: soon, user: "soon", inner: true},
			// Past the certificate's NotAfter on the cache's clock but
			// within the TTL: the entry is unusable, so the chain decides
			// again (on the real clock, where the certificate is valid).
			{cert: soon, step: 40 * time.Second, user: "soon", inner: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			roots.Store(pool())
			clk := testingclock.NewFakeClock(now)
			chain := &countingAuth{inner: group.NewAuthenticatedGroupAdder(union.New(
				x509request.NewDynamic(verify, x509request.CommonNameUserConversion),
				tokens,
			))}
			c := newCertCache(chain, verify, clk)
			for i, cl := range tt.calls {
				clk.Step(cl.step)
				if cl.rotate {
					roots.Store(pool())
				}
				req, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1/api", nil)
				req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cl.cert.cert}}
				if cl.token != "" {
					req.Header.Set("Authorization", "Bearer "+cl.token)
				}
				before := chain.calls.Load()
				resp, ok, err := c.AuthenticateRequest(req)
				got := ""
				if ok && err == nil {
					got = resp.User.GetName()
					if cl.token == "" && !hasGroup(resp.User, user.AllAuthenticated) {
						t.Errorf("call %d: groups %v lack %s", i, resp.User.GetGroups(), user.AllAuthenticated)
					}
				}
				if got != cl.user {
					t.Errorf("call %d: user %q (err %v), want %q", i, got, err, cl.user)
				}
				if reached := chain.calls.Load() > before; reached != cl.inner {
					t.Errorf("call %d: reached the chain %v, want %v", i, reached, cl.inner)
				}
			}
		})
	}
}

func hasGroup(u user.Info, g string) bool {
	for _, x := range u.GetGroups() {
		if x == g {
			return true
		}
	}
	return false
}

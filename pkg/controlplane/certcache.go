package controlplane

import (
	"crypto/sha256"
	"crypto/x509"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/utils/clock"
)

// Bounds of the client certificate cache: a cluster has few client
// certificates (one per component, node and admin), each presented on
// every request of a long-lived connection.
const (
	certCacheSize = 1024
	// certCacheTTL bounds how long a verification is reused. It is not
	// needed for correctness (see certCache) but keeps kube-apiserver's
	// apiserver_client_certificate_expiration_seconds histogram, which is
	// observed on verification, fed with every certificate in use.
	certCacheTTL = time.Minute
)

// certCache skips kube-apiserver's per-request verification of a client
// certificate chain it has verified before. Upstream verifies the chain
// (an ECDSA signature check) on every request, although a connection's
// peer certificates never change; on a busy single-node control plane
// that showed in the server's CPU profile, most of it on its own
// components' requests (see bench/RESULTS.md, Decisions).
//
// A cached answer is exactly the one upstream would give:
//   - it is used only for requests without an Authorization or WebSocket
//     protocol header, so the loopback token and the token authenticators
//     cannot be the ones to answer;
//   - it is installed only where no front proxy (requestheader)
//     authenticator runs, so the client certificate authenticator is the
//     first that can answer such a request;
//   - it is stored only after the chain was verified against the client
//     CA bundle, and only read while that bundle is the same one (the CA
//     provider swaps its pool when the file changes) and every
//     certificate of the chain is still valid.
//
// Kubernetes checks no revocation for client certificates, so reuse
// loses none.
type certCache struct {
	inner authenticator.Request
	// verifyOptions is the client CA provider's, shared with the x509
	// authenticator inside inner.
	verifyOptions func() (x509.VerifyOptions, bool)
	clock         clock.PassiveClock
	entries       *cache.LRUExpireCache
}

type certEntry struct {
	resp  *authenticator.Response
	roots *x509.CertPool
	// notAfter is the earliest expiry in the verified chain.
	notAfter time.Time
}

func newCertCache(inner authenticator.Request, verifyOptions func() (x509.VerifyOptions, bool), clk clock.Clock) *certCache {
	return &certCache{
		inner:         inner,
		verifyOptions: verifyOptions,
		clock:         clk,
		entries:       cache.NewLRUExpireCacheWithClock(certCacheSize, clk),
	}
}

// AuthenticateRequest implements authenticator.Request.
func (c *certCache) AuthenticateRequest(req *http.Request) (*authenticator.Response, bool, error) {
	if req.TLS == nil || len(req.TLS.PeerCertificates) == 0 ||
		req.Header.Get("Authorization") != "" || req.Header.Get("Sec-WebSocket-Protocol") != "" {
		return c.inner.AuthenticateRequest(req)
	}
	opts, ok := c.verifyOptions()
	if !ok {
		return c.inner.AuthenticateRequest(req)
	}
	certs := req.TLS.PeerCertificates
	key := chainKey(certs)
	now := c.clock.Now()
	if v, ok := c.entries.Get(key); ok {
		e := v.(certEntry)
		if e.roots == opts.Roots && now.Before(e.notAfter) {
			return e.resp, true, nil
		}
	}
	resp, ok, err := c.inner.AuthenticateRequest(req)
	if err != nil || !ok {
		return resp, ok, err
	}
	// The inner chain answered; remember the answer only if it was the
	// certificate's, i.e. the chain verifies, as the x509 authenticator
	// checks it (peer intermediates included).
	if opts.Intermediates == nil && len(certs) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, ic := range certs[1:] {
			opts.Intermediates.AddCert(ic)
		}
	}
	opts.CurrentTime = now
	chains, verr := certs[0].Verify(opts)
	if verr != nil {
		return resp, ok, err
	}
	notAfter := certs[0].NotAfter
	for _, chain := range chains {
		for _, cert := range chain {
			if cert.NotAfter.Before(notAfter) {
				notAfter = cert.NotAfter
			}
		}
	}
	c.entries.Add(key, certEntry{resp: resp, roots: opts.Roots, notAfter: notAfter}, certCacheTTL)
	return resp, ok, err
}

// chainKey identifies the peer chain a client presented (DER
// certificates are self-delimiting, so the concatenation is unambiguous).
func chainKey(certs []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	for _, c := range certs {
		h.Write(c.Raw)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

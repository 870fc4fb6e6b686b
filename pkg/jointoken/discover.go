package jointoken

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
)

// ErrCAMismatch is a server whose CA is not the one the token pins.
var ErrCAMismatch = errors.New("CA mismatch")

// Discover connects to the server and returns its CA certificate (PEM),
// trusting nothing before the pin: the server sends its CA in the TLS
// handshake, the CA must have the pinned key and must have signed the
// server's certificate for the address the agent dialled. No secret is sent
// before that holds.
func (j Join) Discover(ctx context.Context, serverURL string) ([]byte, error) {
	u, err := url.Parse(serverURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("--server %q: give the server's API address as https://HOST:PORT", serverURL)
	}
	host := u.Hostname()
	d := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} //nolint:gosec // verified below against the pin
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("reach the server at %s: %w", u.Host, err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("the server at %s sent no certificate", u.Host)
	}
	var ca *x509.Certificate
	var seen []string
	for _, c := range certs[1:] {
		if !c.IsCA {
			continue
		}
		seen = append(seen, "sha256:"+SPKIHash(c))
		if j.Verify(c) == nil {
			ca = c
		}
	}
	switch {
	case ca == nil && len(seen) == 0:
		return nil, fmt.Errorf("%w: the server at %s did not send its CA in the TLS handshake, so the pin cannot be checked: is it a Strata server?", ErrCAMismatch, u.Host)
	case ca == nil:
		return nil, fmt.Errorf("%w: the server at %s has CA %v, but the join token pins sha256:%s: wrong server, or a token from another cluster", ErrCAMismatch, u.Host, seen, j.CAHash)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
		return nil, fmt.Errorf("%w: the server's certificate for %s is not valid under the pinned CA: %v (add the address with `strata server --tls-san`)", ErrCAMismatch, host, err)
	}
	return certutil.EncodeCertificates(ca)
}

// WriteBootstrapKubeconfig writes the kubeconfig the kubelet's TLS
// bootstrap uses: the server, its verified CA and the token.
func (j Join) WriteBootstrapKubeconfig(file, serverURL string, caPEM []byte) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["strata"] = &clientcmdapi.Cluster{Server: serverURL, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["bootstrap"] = &clientcmdapi.AuthInfo{Token: j.Token}
	cfg.Contexts["bootstrap"] = &clientcmdapi.Context{Cluster: "strata", AuthInfo: "bootstrap"}
	cfg.CurrentContext = "bootstrap"
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	if err := clientcmd.WriteToFile(*cfg, file); err != nil {
		return fmt.Errorf("write bootstrap kubeconfig: %w", err)
	}
	return nil
}

// ServerHost is the host part of an https://HOST:PORT server URL.
func ServerHost(serverURL string) string {
	u, err := url.Parse(serverURL)
	if err != nil {
		return ""
	}
	h, _, err := net.SplitHostPort(u.Host)
	if err != nil {
		return u.Host
	}
	return h
}

// ErrTokenRefused is a token the server does not accept.
var ErrTokenRefused = errors.New("token refused")

// CheckToken asks the server who the token is (a SelfSubjectReview): a
// refused token fails here at once with a message that says so, instead
// of the kubelet's bootstrap waiting a minute for a "healthy" server.
func (j Join) CheckToken(ctx context.Context, serverURL string, caPEM []byte) error {
	rc := &rest.Config{Host: serverURL, BearerToken: j.Token, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}, Timeout: 10 * time.Second}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	_, err = cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	switch {
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%w: the server refused join token %s: it expired or was deleted, or never existed; create a new one with `strata token create` on the server", ErrTokenRefused, j.ID())
	case err != nil:
		return fmt.Errorf("check the join token with the server: %w", err)
	}
	return nil
}

// Package pki creates and loads the certificate authority and the
// certificates that the components of a Strata cluster use to talk to each
// other. Everything lives under one directory so a restart reuses it.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"time"

	"github.com/strata-dev/strata/pkg/fileutil"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	certValidity = 365 * 24 * time.Hour
	// renewBefore is how close to expiry a leaf certificate is re-issued at start.
	renewBefore = 30 * 24 * time.Hour
)

// CA is a certificate authority whose key is on disk.
type CA struct {
	Cert     *x509.Certificate
	Key      crypto.Signer
	CertFile string
	KeyFile  string
}

// Cert describes one leaf certificate to issue.
type Cert struct {
	// Name is the file stem: NAME.crt and NAME.key.
	Name         string
	CommonName   string
	Organization []string
	DNSNames     []string
	IPs          []net.IP
	Server       bool
	Client       bool
	// Chain appends the CA to the certificate file, so a TLS handshake
	// carries it: an agent that pins the CA's key (a join token) learns
	// the CA from the server it joins without trusting anything first.
	Chain bool
}

// Paths of an issued certificate.
type Paths struct {
	CertFile, KeyFile string
}

// LoadOrCreateCA loads DIR/NAME.{crt,key} or creates a new self-signed CA.
func LoadOrCreateCA(dir, name, commonName string) (*CA, error) {
	certFile := filepath.Join(dir, name+".crt")
	keyFile := filepath.Join(dir, name+".key")
	if fileutil.Exists(certFile) && fileutil.Exists(keyFile) {
		certs, err := certutil.CertsFromFile(certFile)
		if err != nil {
			return nil, fmt.Errorf("read CA %s: %w", certFile, err)
		}
		key, err := keyutil.PrivateKeyFromFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("read CA key %s: %w", keyFile, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("CA key %s is not a signing key", keyFile)
		}
		return &CA{Cert: certs[0], Key: signer, CertFile: certFile, KeyFile: keyFile}, nil
	}
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA %s: %w", name, err)
	}
	cert, _ := x509.ParseCertificate(der)
	if err := writeCertAndKey(certFile, keyFile, der, key); err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertFile: certFile, KeyFile: keyFile}, nil
}

// Issue writes DIR/NAME.{crt,key} signed by the CA unless a valid one with
// the same names is already there.
func (ca *CA) Issue(dir string, c Cert) (Paths, error) {
	p := Paths{CertFile: filepath.Join(dir, c.Name+".crt"), KeyFile: filepath.Join(dir, c.Name+".key")}
	if ca.stillValid(p, c) {
		return p, nil
	}
	key, err := NewKey()
	if err != nil {
		return p, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{CommonName: c.CommonName, Organization: c.Organization},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		DNSNames:     c.DNSNames,
		IPAddresses:  c.IPs,
	}
	if c.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if c.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return p, fmt.Errorf("issue certificate %s: %w", c.Name, err)
	}
	var chain []*x509.Certificate
	if c.Chain {
		chain = append(chain, ca.Cert)
	}
	return p, writeCertAndKey(p.CertFile, p.KeyFile, der, key, chain...)
}

// stillValid reports whether an existing certificate was signed by this CA,
// is not near expiry and covers every name asked for, so restarts keep it.
func (ca *CA) stillValid(p Paths, c Cert) bool {
	if !fileutil.Exists(p.CertFile) || !fileutil.Exists(p.KeyFile) {
		return false
	}
	certs, err := certutil.CertsFromFile(p.CertFile)
	if err != nil || len(certs) == 0 {
		return false
	}
	cert := certs[0]
	if c.Chain && (len(certs) < 2 || !certs[1].Equal(ca.Cert)) {
		return false
	}
	if cert.CheckSignatureFrom(ca.Cert) != nil || time.Until(cert.NotAfter) < renewBefore {
		return false
	}
	if cert.Subject.CommonName != c.CommonName {
		return false
	}
	for _, n := range c.DNSNames {
		if cert.VerifyHostname(n) != nil {
			return false
		}
	}
	for _, ip := range c.IPs {
		if cert.VerifyHostname(ip.String()) != nil {
			return false
		}
	}
	return true
}

// NewKey returns a new P-256 key: fast to generate, accepted everywhere in
// Kubernetes, service-account token signing included.
func NewKey() (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return key, nil
}

// LoadOrCreateKey writes a bare private key (used for service-account tokens).
func LoadOrCreateKey(file string) error {
	if fileutil.Exists(file) {
		return nil
	}
	key, err := NewKey()
	if err != nil {
		return err
	}
	pemBytes, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	return fileutil.WriteAtomic(file, pemBytes, 0o600)
}

func writeCertAndKey(certFile, keyFile string, der []byte, key *ecdsa.PrivateKey, chain ...*x509.Certificate) error {
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	certPEM, err := certutil.EncodeCertificates(append([]*x509.Certificate{mustParse(der)}, chain...)...)
	if err != nil {
		return fmt.Errorf("encode certificate: %w", err)
	}
	if err := fileutil.WriteAtomic(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return fileutil.WriteAtomic(certFile, certPEM, 0o644)
}

func mustParse(der []byte) *x509.Certificate {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err) // der came from x509.CreateCertificate
	}
	return c
}

func newSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}

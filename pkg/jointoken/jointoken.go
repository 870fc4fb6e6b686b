// Package jointoken makes and reads the tokens with which agents join a
// Strata server. A token is an upstream bootstrap token (a Secret of type
// bootstrap.kubernetes.io/token in kube-system, which the API server's
// bootstrap token authenticator accepts and the controller manager's
// tokencleaner deletes once expired). The join string an operator hands
// to an agent adds a pin of the server's CA, as kubeadm's
// --discovery-token-ca-cert-hash does: the SHA-256 of the CA certificate's
// SubjectPublicKeyInfo, so an agent trusts no other server.
//
//	strata1:sha256:<64 hex>:<token id>.<token secret>
package jointoken

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
)

// AgentGroup is the extra group of agents' tokens; the RBAC that lets a
// joining kubelet ask for its certificate binds it.
const AgentGroup = "system:bootstrappers:strata:agents"

const prefix = "strata1:sha256:"

// Join is what an agent needs to join: the pin of the server's CA and a
// bootstrap token.
type Join struct {
	// CAHash is the hex SHA-256 of the CA's SubjectPublicKeyInfo.
	CAHash string
	// Token is "<id>.<secret>".
	Token string
}

// String is the join string.
func (j Join) String() string { return prefix + j.CAHash + ":" + j.Token }

// ID is the token's public part (the Secret's name suffix).
func (j Join) ID() string { id, _, _ := strings.Cut(j.Token, "."); return id }

// Parse reads a join string, saying what is wrong with a bad one.
func Parse(s string) (Join, error) {
	s = strings.TrimSpace(s)
	const how = "use the string `strata token create` printed (strata1:sha256:<CA hash>:<token>)"
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return Join{}, fmt.Errorf("join token %q does not start with %q: %s", redact(s), prefix, how)
	}
	hash, token, ok := strings.Cut(rest, ":")
	if !ok {
		return Join{}, fmt.Errorf("join token %q has no token after the CA hash: %s", redact(s), how)
	}
	if b, err := hex.DecodeString(hash); err != nil || len(b) != sha256.Size {
		return Join{}, fmt.Errorf("join token %q: the CA hash is not 64 hex digits: %s", redact(s), how)
	}
	if !bootstraputil.IsValidBootstrapToken(token) {
		return Join{}, fmt.Errorf("join token %q: the token is not <6 chars>.<16 chars> of a-z0-9: %s", redact(s), how)
	}
	return Join{CAHash: strings.ToLower(hash), Token: token}, nil
}

// redact hides a token's secret in messages.
func redact(s string) string {
	if i := strings.LastIndex(s, "."); i >= 0 && len(s)-i > 4 {
		return s[:i+1] + "****"
	}
	return s
}

// CAHash pins the first certificate of caPEM.
func CAHash(caPEM []byte) (string, error) {
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", errors.New("CA: no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("CA: %w", err)
	}
	return SPKIHash(cert), nil
}

// SPKIHash is the hex SHA-256 of a certificate's public key info.
func SPKIHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// Verify checks a CA certificate the server presents against the pin.
func (j Join) Verify(ca *x509.Certificate) error {
	if got := SPKIHash(ca); got != j.CAHash {
		return fmt.Errorf("the server's CA (sha256:%s) is not the one the join token pins (sha256:%s): wrong server, or a token from another cluster", got, j.CAHash)
	}
	return nil
}

// Create stores a new bootstrap token valid for ttl and returns the join
// string for it, pinned to caPEM.
func Create(ctx context.Context, cs kubernetes.Interface, caPEM []byte, ttl time.Duration, description string) (Join, error) {
	if ttl <= 0 {
		return Join{}, fmt.Errorf("--ttl %s: a token must expire; give a positive duration such as 24h", ttl)
	}
	hash, err := CAHash(caPEM)
	if err != nil {
		return Join{}, err
	}
	token, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return Join{}, fmt.Errorf("generate token: %w", err)
	}
	id, secret, _ := strings.Cut(token, ".")
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: bootstraputil.BootstrapTokenSecretName(id), Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		StringData: map[string]string{
			bootstrapapi.BootstrapTokenIDKey:               id,
			bootstrapapi.BootstrapTokenSecretKey:           secret,
			bootstrapapi.BootstrapTokenExpirationKey:       time.Now().Add(ttl).UTC().Format(time.RFC3339),
			bootstrapapi.BootstrapTokenUsageAuthentication: "true",
			bootstrapapi.BootstrapTokenExtraGroupsKey:      AgentGroup,
			bootstrapapi.BootstrapTokenDescriptionKey:      description,
		},
	}
	if _, err := cs.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		return Join{}, fmt.Errorf("store bootstrap token: %w", err)
	}
	return Join{CAHash: hash, Token: token}, nil
}

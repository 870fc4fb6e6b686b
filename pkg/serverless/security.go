package serverless

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/rest"

	servingv1 "github.com/strata-dev/strata/api/serving/v1alpha1"
	"github.com/strata-dev/strata/pkg/httpauth"
)

// Gateway authentication modes.
const (
	// AuthNone serves every request: functions are public endpoints, as
	// Knative's are by default.
	AuthNone = "none"
	// AuthKubernetes serves only callers with Kubernetes credentials (a
	// bearer token, or a client certificate of the cluster CA) allowed to
	// create functions/invoke on the function.
	AuthKubernetes = "kubernetes"
	// InvokeSubresource is what RBAC grants to call a function.
	InvokeSubresource = "invoke"
)

// Security is how the gateway protects its listener.
type Security struct {
	// TLSCertFile and TLSKeyFile, when set, serve HTTPS (and URLs say
	// https).
	TLSCertFile, TLSKeyFile string
	// Auth is AuthNone or AuthKubernetes.
	Auth string
	// ClientCAFile verifies client certificates in AuthKubernetes mode
	// ("" for bearer tokens only).
	ClientCAFile string
}

// Validate says which flag is wrong and how to fix it.
func (s Security) Validate() error {
	switch s.Auth {
	case "", AuthNone, AuthKubernetes:
	default:
		return fmt.Errorf("--gateway-auth %q: use %s (public functions) or %s (callers need a token or certificate allowed to create functions/invoke)", s.Auth, AuthNone, AuthKubernetes)
	}
	if (s.TLSCertFile == "") != (s.TLSKeyFile == "") {
		return errors.New("--gateway-tls-cert-file and --gateway-tls-key-file go together: pass both or neither")
	}
	if s.TLSCertFile != "" {
		if _, err := tls.LoadX509KeyPair(s.TLSCertFile, s.TLSKeyFile); err != nil {
			return fmt.Errorf("--gateway-tls-cert-file/--gateway-tls-key-file: %v: pass a PEM certificate and its key", err)
		}
	}
	return nil
}

// TLS reports whether the gateway serves HTTPS.
func (s Security) TLS() bool { return s.TLSCertFile != "" }

// tlsConfig is the listener's TLS configuration (nil for plain HTTP).
func (s Security) tlsConfig() (*tls.Config, error) {
	if !s.TLS() {
		return nil, nil
	}
	clientCA := ""
	if s.Auth == AuthKubernetes {
		clientCA = s.ClientCAFile
	}
	tc, err := httpauth.ServerTLS(s.TLSCertFile, s.TLSKeyFile, clientCA)
	if err != nil {
		return nil, fmt.Errorf("function gateway: %w", err)
	}
	return tc, nil
}

// authenticator is the delegated checker for AuthKubernetes, nil otherwise.
func (s Security) authenticator(rc *rest.Config) (*httpauth.Delegated, error) {
	if s.Auth != AuthKubernetes {
		return nil, nil
	}
	return httpauth.New(rc, s.ClientCAFile)
}

// invokeAttributes is what calling a function asks of RBAC.
func invokeAttributes(fn, ns string) httpauth.Attributes {
	return func(_ *http.Request, u user.Info) (authorizer.Attributes, bool) {
		return authorizer.AttributesRecord{User: u, Verb: "create", APIGroup: servingv1.GroupVersion.Group,
			Resource: "functions", Subresource: InvokeSubresource, Namespace: ns, Name: fn, ResourceRequest: true}, true
	}
}

// Package httpauth authenticates and authorizes requests to Strata's own
// HTTP listeners (metrics, the registry's network listener, the function
// gateway) by delegating to the API server, as the kubelet and
// metrics-server do: client certificates signed by the cluster CA, bearer
// tokens through TokenReview, and every request through a
// SubjectAccessReview, both with upstream's caches. A listener therefore
// grants exactly what RBAC grants, and revoking a binding revokes access.
package httpauth

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/apiserver/pkg/server/options"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

// Delegated checks requests against the API server.
type Delegated struct {
	authn authenticator.Request
	authz authorizer.Authorizer
	// Realm is sent in the WWW-Authenticate challenge of a 401, so clients
	// that speak Basic (registry clients) know to send their credentials.
	Realm string
}

// New builds a Delegated from the API server's client configuration and
// the PEM file of the CA that signs client certificates ("" for tokens
// only).
func New(rc *rest.Config, clientCAFile string) (*Delegated, error) {
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("delegated auth client: %w", err)
	}
	authnCfg := authenticatorfactory.DelegatingAuthenticatorConfig{
		TokenAccessReviewClient:  cs.AuthenticationV1(),
		TokenAccessReviewTimeout: 10 * time.Second,
		WebhookRetryBackoff:      options.DefaultAuthWebhookRetryBackoff(),
		CacheTTL:                 time.Minute,
	}
	if clientCAFile != "" {
		ca, err := dynamiccertificates.NewDynamicCAContentFromFile("client-ca", clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client CA %s: %w", clientCAFile, err)
		}
		authnCfg.ClientCertificateCAContentProvider = ca
	}
	authn, _, err := authnCfg.New()
	if err != nil {
		return nil, fmt.Errorf("delegated authentication: %w", err)
	}
	authz, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: cs.AuthorizationV1(),
		AllowCacheTTL:             time.Minute,
		DenyCacheTTL:              10 * time.Second,
		WebhookRetryBackoff:       options.DefaultAuthWebhookRetryBackoff(),
	}.New()
	if err != nil {
		return nil, fmt.Errorf("delegated authorization: %w", err)
	}
	return &Delegated{authn: authn, authz: authz}, nil
}

// Attributes says what a request asks to do, for a user; ok false means
// the request asks for nothing beyond being authenticated (a registry's
// version check).
type Attributes func(r *http.Request, u user.Info) (attrs authorizer.Attributes, ok bool)

// Check authenticates r and authorizes what attrs says it does. It writes
// the refusal (401 or 403, with a message that says what to present or
// which permission is missing) and returns false, or returns true and the
// user.
func (d *Delegated) Check(w http.ResponseWriter, r *http.Request, attrs Attributes) (user.Info, bool) {
	basicToBearer(r)
	resp, ok, err := d.authn.AuthenticateRequest(r)
	if err != nil || !ok {
		if err != nil {
			klog.V(2).InfoS("Authentication failed", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
		}
		if d.Realm != "" {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", d.Realm))
		}
		http.Error(w, "Unauthorized: present a client certificate signed by the cluster CA or a Kubernetes bearer token", http.StatusUnauthorized)
		return nil, false
	}
	a, named := attrs(r, resp.User)
	if !named {
		return resp.User, true
	}
	decision, reason, err := d.authz.Authorize(r.Context(), a)
	if err != nil {
		klog.ErrorS(err, "Authorization failed", "user", resp.User.GetName(), "path", r.URL.Path)
		http.Error(w, "authorization check failed: "+err.Error(), http.StatusInternalServerError)
		return nil, false
	}
	if decision != authorizer.DecisionAllow {
		msg := fmt.Sprintf("Forbidden: user %q cannot %s", resp.User.GetName(), Describe(a))
		if reason != "" {
			msg += ": " + reason
		}
		http.Error(w, msg, http.StatusForbidden)
		return nil, false
	}
	return resp.User, true
}

// Handler wraps h so that every request passes Check first.
func (d *Delegated) Handler(attrs Attributes, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := d.Check(w, r, attrs); ok {
			h.ServeHTTP(w, r)
		}
	})
}

// NonResource authorizes a request as the verb get (or the method's verb)
// on its URL path, like the API server's own /metrics.
func NonResource(r *http.Request, u user.Info) (authorizer.Attributes, bool) {
	return authorizer.AttributesRecord{User: u, Verb: Verb(r.Method), Path: r.URL.Path}, true
}

// Verb is the Kubernetes verb for an HTTP method.
func Verb(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut, http.MethodPatch:
		return "update"
	case http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(method)
}

// Describe is an attributes record as RBAC users read it.
func Describe(a authorizer.Attributes) string {
	if !a.IsResourceRequest() {
		return fmt.Sprintf("%s the path %q", a.GetVerb(), a.GetPath())
	}
	res := a.GetResource()
	if a.GetSubresource() != "" {
		res += "/" + a.GetSubresource()
	}
	if a.GetAPIGroup() != "" {
		res += "." + a.GetAPIGroup()
	}
	s := fmt.Sprintf("%s %s", a.GetVerb(), res)
	if a.GetName() != "" {
		s += fmt.Sprintf(" %q", a.GetName())
	}
	if a.GetNamespace() != "" {
		s += " in namespace " + a.GetNamespace()
	}
	return s
}

// basicToBearer lets registry clients, which only speak Basic, present a
// Kubernetes token as the password (any user name), as OpenShift's
// registry does.
func basicToBearer(r *http.Request) {
	h := r.Header.Get("Authorization")
	scheme, payload, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "basic") {
		return
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(payload))
	if err != nil {
		return
	}
	if _, password, ok := strings.Cut(string(raw), ":"); ok && password != "" {
		r.Header.Set("Authorization", "Bearer "+password)
	}
}

// ServerTLS is a listener's TLS configuration: its serving certificate
// and, with clientCAFile, client certificates verified against that CA.
// They stay optional at the handshake (token users have none); the
// authenticator maps a verified one to its user.
func ServerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAFile == "" {
		return tc, nil
	}
	pem, err := os.ReadFile(clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	tc.ClientCAs = x509.NewCertPool()
	if !tc.ClientCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("client CA %s has no certificate", clientCAFile)
	}
	tc.ClientAuth = tls.VerifyClientCertIfGiven
	return tc, nil
}

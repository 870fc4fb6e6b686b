package httpauth

import (
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/strata-dev/strata/pkg/controlplane/pki"
)

func TestBasicToBearer(t *testing.T) {
	tests := []struct{ header, want string }{
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("anyone:tok3n")), "Bearer tok3n"},
		{"basic " + base64.StdEncoding.EncodeToString([]byte("u:a:b")), "Bearer a:b"},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("user-only:")), "Basic dXNlci1vbmx5Og=="},
		{"Basic !!!", "Basic !!!"},
		{"Bearer x", "Bearer x"},
		{"", ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		basicToBearer(r)
		if got := r.Header.Get("Authorization"); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.header, got, tt.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		a    authorizer.AttributesRecord
		want string
	}{
		{authorizer.AttributesRecord{Verb: "get", Path: "/metrics"}, `get the path "/metrics"`},
		{authorizer.AttributesRecord{Verb: "create", APIGroup: "serving.strata.dev", Resource: "functions", Subresource: "invoke",
			Name: "fn", Namespace: "team", ResourceRequest: true}, `create functions/invoke.serving.strata.dev "fn" in namespace team`},
		{authorizer.AttributesRecord{Verb: "list", APIGroup: "registry.strata.dev", Resource: "repositories", ResourceRequest: true},
			"list repositories.registry.strata.dev"},
	}
	for _, tt := range tests {
		if got := Describe(tt.a); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestVerb(t *testing.T) {
	for method, want := range map[string]string{"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete", "OPTIONS": "options"} {
		if got := Verb(method); got != want {
			t.Errorf("%s: %q, want %q", method, got, want)
		}
	}
}

func TestServerTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(dir, "ca", "test-ca")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(dir, pki.Cert{Name: "srv", CommonName: "srv", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		clientCA string
		want     tls.ClientAuthType
		err      string
	}{
		{"tokens only", "", tls.NoClientCert, ""},
		{"client certificates of the CA", filepath.Join(dir, "ca.crt"), tls.VerifyClientCertIfGiven, ""},
		{"missing CA file", filepath.Join(dir, "nope.crt"), 0, "client CA: open"},
		{"CA file without a certificate", empty, 0, "has no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc, err := ServerTLS(cert.CertFile, cert.KeyFile, tt.clientCA)
			switch {
			case tt.err != "":
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
			case err != nil:
				t.Fatal(err)
			case tc.ClientAuth != tt.want || len(tc.Certificates) != 1 || tc.MinVersion != tls.VersionTLS12:
				t.Fatalf("client auth %v, %d certificates, min version %x", tc.ClientAuth, len(tc.Certificates), tc.MinVersion)
			}
		})
	}
	if _, err := ServerTLS(filepath.Join(dir, "nope.crt"), cert.KeyFile, ""); err == nil || !strings.Contains(err.Error(), "serving certificate") {
		t.Errorf("missing serving certificate: %v", err)
	}
}

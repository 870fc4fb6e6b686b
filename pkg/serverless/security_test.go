package serverless

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servingv1 "github.com/strata-dev/strata/api/serving/v1alpha1"
	"github.com/strata-dev/strata/pkg/controllers/function"
	"github.com/strata-dev/strata/pkg/controlplane/pki"
)

func TestSecurityValidate(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(dir, "ca", "test-ca")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(dir, pki.Cert{Name: "gw", CommonName: "gw", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		s    Security
		want string // "" for valid
	}{
		{"defaults", Security{}, ""},
		{"none", Security{Auth: AuthNone}, ""},
		{"kubernetes with TLS", Security{Auth: AuthKubernetes, TLSCertFile: cert.CertFile, TLSKeyFile: cert.KeyFile}, ""},
		{"unknown auth", Security{Auth: "basic"}, `--gateway-auth "basic": use none`},
		{"cert without key", Security{TLSCertFile: cert.CertFile}, "go together: pass both or neither"},
		{"key without cert", Security{TLSKeyFile: cert.KeyFile}, "go together"},
		{"missing files", Security{TLSCertFile: filepath.Join(dir, "nope.crt"), TLSKeyFile: filepath.Join(dir, "nope.key")}, "no such file or directory: pass a PEM certificate and its key"},
		{"key of another certificate", Security{TLSCertFile: cert.CertFile, TLSKeyFile: filepath.Join(dir, "ca.key")}, "private key does not match public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestFunctionURL(t *testing.T) {
	fn := &servingv1.Function{ObjectMeta: metav1.ObjectMeta{Name: "fn", Namespace: "team"}}
	tests := []struct {
		port int
		tls  bool
		want string
	}{
		{8088, false, "http://fn.team.example.com:8088/"},
		{80, false, "http://fn.team.example.com/"},
		{443, false, "http://fn.team.example.com:443/"},
		{443, true, "https://fn.team.example.com/"},
		{8443, true, "https://fn.team.example.com:8443/"},
	}
	for _, tt := range tests {
		if got := function.URL(fn, "example.com", tt.port, tt.tls); got != tt.want {
			t.Errorf("port %d tls %v: %q, want %q", tt.port, tt.tls, got, tt.want)
		}
	}
}

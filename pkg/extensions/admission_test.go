package extensions

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"
)

func TestRequireCommonName(t *testing.T) {
	check := requireCommonName("kube-apiserver-webhook-client")
	cert := func(cn string) [][]*x509.Certificate {
		return [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: cn}}}}
	}
	tests := []struct {
		name   string
		chains [][]*x509.Certificate
		want   string
	}{
		{"the API server", cert("kube-apiserver-webhook-client"), ""},
		{"another client of the CA", cert("strata-admin"), `client certificate "strata-admin" is not the API server's`},
		{"no certificate", nil, "only the API server may call these webhooks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := check(nil, tt.chains)
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

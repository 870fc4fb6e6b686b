package servingcsr

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"strings"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func request(t *testing.T, cn string, org []string, ips []string, dns []string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: org}, DNSNames: dns}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestCheck(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "edge1"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "10.0.0.2"}, {Type: corev1.NodeHostName, Address: "edge1.local"}}}}
	serving := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}
	tests := []struct {
		name     string
		user     string
		groups   []string
		usages   []certificatesv1.KeyUsage
		req      []byte
		wantErr  string
		namesErr string
	}{
		{name: "a node's own names", user: "system:node:edge1", groups: []string{"system:nodes"}, usages: serving,
			req: request(t, "system:node:edge1", []string{"system:nodes"}, []string{"10.0.0.2"}, []string{"edge1", "edge1.local"})},
		{name: "not a node", user: "alice", groups: []string{"system:authenticated"}, usages: serving,
			req: request(t, "system:node:edge1", []string{"system:nodes"}, []string{"10.0.0.2"}, nil), wantErr: `requested by "alice", not by a node`},
		{name: "another node's name", user: "system:node:edge2", groups: []string{"system:nodes"}, usages: serving,
			req: request(t, "system:node:edge1", []string{"system:nodes"}, []string{"10.0.0.2"}, nil), wantErr: "is not the requester's"},
		{name: "client auth", user: "system:node:edge1", groups: []string{"system:nodes"}, usages: append(serving, certificatesv1.UsageClientAuth),
			req: request(t, "system:node:edge1", []string{"system:nodes"}, []string{"10.0.0.2"}, nil), wantErr: `usage "client auth"`},
		{name: "no server auth", user: "system:node:edge1", groups: []string{"system:nodes"}, usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature},
			req: request(t, "system:node:edge1", []string{"system:nodes"}, []string{"10.0.0.2"}, nil), wantErr: "lack server auth"},
		{name: "no names", user: "system:node:edge1", groups: []string{"system:nodes"}, usages: serving,
			req: request(t, "system:node:edge1", []string{"system:nodes"}, nil, nil), wantErr: "no DNS name or IP address"},
		{name: "garbage", user: "system:node:edge1", groups: []string{"system:nodes"}, usages: serving,
			req: []byte("nope"), wantErr: "not a PEM CERTIFICATE REQUEST"},
		{name: "an address the node does not have", user: "system:node:edge1", groups: []string{"system:nodes"}, usages: serving,
			req: request(t, "system:node:edge1", []string{"system:nodes"}, []string{"10.0.0.9"}, nil), namesErr: "IP address 10.0.0.9 is not one of node edge1's addresses"},
		{name: "a name the node does not have", user: "system:node:edge1", groups: []string{"system:nodes"}, usages: serving,
			req: request(t, "system:node:edge1", []string{"system:nodes"}, nil, []string{"bank.example.com"}), namesErr: "DNS name bank.example.com is not one of node edge1's names"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			csr := &certificatesv1.CertificateSigningRequest{Spec: certificatesv1.CertificateSigningRequestSpec{
				Request: tc.req, SignerName: Signer, Usages: tc.usages, Username: tc.user, Groups: tc.groups}}
			name, err := check(csr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("check: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || name != "edge1" {
				t.Fatalf("check: %q %v", name, err)
			}
			err = checkNames(csr, node)
			if tc.namesErr == "" && err != nil || tc.namesErr != "" && (err == nil || !strings.Contains(err.Error(), tc.namesErr)) {
				t.Fatalf("checkNames: %v, want %q", err, tc.namesErr)
			}
		})
	}
}

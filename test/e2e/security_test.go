package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/strata-dev/strata/pkg/layout"
)

// Issue 28: Secrets are encrypted at rest with a key under the data dir,
// `strata secrets-encrypt rotate` re-encrypts every Secret with a new one,
// and the audit log records changes without Secrets' contents.
func TestSecretsEncryptionAndAudit(t *testing.T) {
	s := cluster(t)
	ctx := context.Background()
	etcd := etcdClient(t, s.dataDir)
	const plaintext = "hunter2-e2e-encryption"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "e2e-encrypted", Namespace: "default"}, StringData: map[string]string{"password": plaintext}}
	if _, err := s.client.CoreV1().Secrets("default").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.client.CoreV1().Secrets("default").Delete(ctx, secret.Name, metav1.DeleteOptions{}) })

	status := func() string {
		return strings.TrimSpace(strata(t, "secrets-encrypt", "status", "--data-dir", s.dataDir))
	}
	var firstKey string
	t.Run("a Secret is stored encrypted in etcd", func(t *testing.T) {
		first := status()
		if !strings.HasPrefix(first, "secretbox key key-") || strings.Count(first, "\n") != 0 {
			t.Fatalf("secrets-encrypt status:\n%s", first)
		}
		firstKey = strings.Fields(first)[2]
		raw := etcdValue(t, etcd, "/registry/secrets/default/e2e-encrypted")
		if !strings.HasPrefix(raw, "k8s:enc:secretbox:v1:"+firstKey+":") || strings.Contains(raw, plaintext) {
			t.Fatalf("etcd holds %.60q..., want the secretbox prefix of %s and no plaintext", raw, firstKey)
		}
	})

	t.Run("rotate re-encrypts every Secret with a new key", func(t *testing.T) {
		start := time.Now()
		out := strata(t, "secrets-encrypt", "rotate", "--data-dir", s.dataDir)
		t.Logf("rotate took %s:\n%s", time.Since(start).Round(time.Millisecond), out)
		after := status()
		if strings.Count(after, "\n") != 0 || strings.Contains(after, firstKey) {
			t.Fatalf("after rotate, status:\n%s", after)
		}
		newKey := strings.Fields(after)[2]
		resp, err := etcd.Get(ctx, "/registry/secrets/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range resp.Kvs {
			if !strings.HasPrefix(string(kv.Value), "k8s:enc:secretbox:v1:"+newKey+":") {
				t.Errorf("%s is not stored with %s: %.40q", kv.Key, newKey, kv.Value)
			}
		}
		t.Logf("%d Secrets in etcd, all with %s", len(resp.Kvs), newKey)
		got, err := s.client.CoreV1().Secrets("default").Get(ctx, secret.Name, metav1.GetOptions{})
		if err != nil || string(got.Data["password"]) != plaintext {
			t.Fatalf("the Secret after rotation: %v, %v", got, err)
		}
	})

	t.Run("the audit log records changes, never Secrets' contents", func(t *testing.T) {
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "e2e-audited", Namespace: "default"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}}
		if _, err := s.client.RbacV1().Roles("default").Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.client.RbacV1().Roles("default").Delete(ctx, role.Name, metav1.DeleteOptions{}) })
		logFile := layout.Layout{DataDir: s.dataDir}.AuditLog()
		var secretEvent, roleEvent map[string]any
		waitFor(t, 30*time.Second, "both creates in "+logFile, func(context.Context) (bool, error) {
			secretEvent = auditEvent(t, logFile, "create", "secrets", secret.Name)
			roleEvent = auditEvent(t, logFile, "create", "roles", role.Name)
			return secretEvent != nil && roleEvent != nil, nil
		})
		if secretEvent["level"] != "Metadata" || secretEvent["requestObject"] != nil || secretEvent["responseObject"] != nil {
			t.Errorf("Secret create audited as %v (request body %v): want Metadata and no body", secretEvent["level"], secretEvent["requestObject"] != nil)
		}
		if roleEvent["level"] != "RequestResponse" || !strings.Contains(jsonOf(roleEvent["requestObject"]), `"pods"`) {
			t.Errorf("Role create audited as %v with request %s: want RequestResponse with the rules", roleEvent["level"], jsonOf(roleEvent["requestObject"]))
		}
		raw, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), plaintext) || strings.Contains(string(raw), base64.StdEncoding.EncodeToString([]byte(plaintext))) {
			t.Error("the audit log holds a Secret's value")
		}
	})
}

// etcdClient connects to the server's etcd with the API server's client
// certificate, trusting etcd's own CA.
func etcdClient(t *testing.T, dataDir string) *clientv3.Client {
	t.Helper()
	pkiDir := layout.Layout{DataDir: dataDir}.PKIDir()
	cert, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "apiserver-etcd-client.crt"), filepath.Join(pkiDir, "apiserver-etcd-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(pkiDir, "etcd-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{"https://127.0.0.1:2379"}, DialTimeout: 5 * time.Second,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func etcdValue(t *testing.T, c *clientv3.Client, key string) string {
	t.Helper()
	resp, err := c.Get(context.Background(), key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("etcd get %s: %v (%d keys)", key, err, len(resp.Kvs))
	}
	return string(resp.Kvs[0].Value)
}

// auditEvent finds the last ResponseComplete event of verb on resource
// name in the audit log.
func auditEvent(t *testing.T, file, verb, resource, name string) map[string]any {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var found map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev["verb"] != verb || ev["stage"] != "ResponseComplete" {
			continue
		}
		if ref, ok := ev["objectRef"].(map[string]any); ok && ref["resource"] == resource && ref["name"] == name {
			found = ev
		}
	}
	return found
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

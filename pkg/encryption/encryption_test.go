package encryption

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
)

func TestEnsureKeepsAnExistingKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pki", "encryption-config.yaml")
	if err := Ensure(file); err != nil {
		t.Fatal(err)
	}
	first, err := Load(file)
	if err != nil || len(first) != 1 || !strings.HasPrefix(first[0].Name, "key-") {
		t.Fatalf("Load = %v, %v", first, err)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	if err := Ensure(file); err != nil {
		t.Fatal(err)
	}
	again, _ := Load(file)
	if again[0] != first[0] {
		t.Error("Ensure replaced an existing key: Secrets written with it would no longer read")
	}
}

func TestLoadRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"not yaml":  "{",
		"short key": "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - secretbox:\n      keys:\n      - {name: k, secret: AAAA}\n",
		"no keys":   "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - identity: {}\n",
		"unknown":   "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresourcez: []\n",
	} {
		file := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(file); err == nil || !strings.Contains(err.Error(), file) {
			t.Errorf("%s: Load = %v, want an error naming the file", name, err)
		}
	}
}

func TestNewKeyNames(t *testing.T) {
	k, err := newKey(time.Date(2026, 12, 5, 6, 30, 0, 0, time.UTC))
	if err != nil || k.Name != "key-20261205T063000Z" {
		t.Fatalf("newKey = %v, %v", k.Name, err)
	}
	if err := write(filepath.Join(t.TempDir(), "c.yaml"), []apiserverv1.Key{k}); err != nil {
		t.Fatal(err)
	}
}

func TestParseReloads(t *testing.T) {
	m := []byte(`# HELP x
apiserver_encryption_config_controller_automatic_reloads_total{apiserver_id_hash="sha256:ab",status="success"} 3
apiserver_encryption_config_controller_automatic_reloads_total{apiserver_id_hash="sha256:ab",status="failure"} 1
apiserver_encryption_config_controller_automatic_reload_last_timestamp_seconds{apiserver_id_hash="sha256:ab",status="success"} 1.7e+09
`)
	if ok, failed := parseReloads(m), parseFailures(m); ok != 3 || failed != 1 {
		t.Fatalf("parse = %v, %v; want 3, 1", ok, failed)
	}
}

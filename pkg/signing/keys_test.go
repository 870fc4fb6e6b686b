package signing

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

var testPassword = []byte("correct horse")

func TestKeyFileRoundTrip(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "cosign")
	kp, err := GenerateKeyPair(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	privFile, pubFile, err := WriteKeyPair(kp, prefix, false)
	if err != nil {
		t.Fatal(err)
	}
	if privFile != prefix+".key" || pubFile != prefix+".pub" {
		t.Fatalf("wrote %s and %s", privFile, pubFile)
	}
	if fi, _ := os.Stat(privFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", fi.Mode().Perm())
	}

	signer, err := LoadPrivateKey(privFile, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := LoadPublicKey(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("payload")
	sig, err := signer.SignMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if err := verifier.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg)); err != nil {
		t.Fatalf("signature by the loaded private key does not verify with the public key file: %v", err)
	}

	if _, _, err := WriteKeyPair(kp, prefix, false); err == nil || !strings.Contains(err.Error(), "already exists: pass --force") {
		t.Errorf("overwrite without force: got %v", err)
	}
	if _, _, err := WriteKeyPair(kp, prefix, true); err != nil {
		t.Errorf("overwrite with force: %v", err)
	}

	_, err = LoadPrivateKey(privFile, []byte("wrong"))
	if err == nil || !strings.Contains(err.Error(), "wrong password") || !strings.Contains(err.Error(), privFile) {
		t.Errorf("wrong password: got %v, want it to say \"wrong password\" and name %s", err, privFile)
	}
}

// TestKeyFormatCompatibility reads and writes keys with the libraries cosign
// itself uses, so a key made by either tool works in the other.
func TestKeyFormatCompatibility(t *testing.T) {
	kp, err := GenerateKeyPair(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(kp.PrivatePEM)
	if block == nil || block.Type != "ENCRYPTED SIGSTORE PRIVATE KEY" {
		t.Fatalf("private key PEM block %v", block)
	}
	var envelope map[string]any
	if err := json.Unmarshal(block.Bytes, &envelope); err != nil {
		t.Fatalf("PEM body is not the JSON go-securesystemslib writes: %v", err)
	}
	for _, field := range []string{"kdf", "cipher", "ciphertext"} {
		if _, ok := envelope[field]; !ok {
			t.Errorf("encrypted key JSON lacks %q", field)
		}
	}
	der, err := encrypted.Decrypt(block.Bytes, testPassword)
	if err != nil {
		t.Fatalf("go-securesystemslib cannot decrypt the key: %v", err)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatalf("decrypted key is not PKCS#8: %v", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		t.Fatalf("key is %T, want ECDSA P-256", key)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(kp.PublicPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := cryptoutils.EqualKeys(pub, ec.Public()); err != nil {
		t.Errorf("cosign.pub does not hold the private key's public key: %v", err)
	}
	// sigstore's loader is the one `cosign sign --key` calls.
	if _, err := cryptoutils.UnmarshalPEMToPrivateKey(kp.PrivatePEM, cryptoutils.StaticPasswordFunc(testPassword)); err != nil {
		t.Errorf("sigstore cannot load the key: %v", err)
	}

	// And the other way: a key pair written by sigstore's code (what cosign
	// generate-key-pair runs), in the current and the older PEM spelling.
	privPEM, _, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), cryptoutils.StaticPasswordFunc(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	legacy := relabel(t, privPEM, LegacyPrivateKeyPEMType)
	dir := t.TempDir()
	for name, data := range map[string][]byte{"sigstore.key": privPEM, "legacy.key": legacy} {
		f := filepath.Join(dir, name)
		os.WriteFile(f, data, 0o600)
		if _, err := LoadPrivateKey(f, testPassword); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func relabel(t *testing.T, data []byte, typ string) []byte {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("not PEM")
	}
	block.Type = typ
	return pem.EncodeToMemory(block)
}

func TestBadKeyFiles(t *testing.T) {
	dir := t.TempDir()
	kp, err := GenerateKeyPair(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	privFile, pubFile, err := WriteKeyPair(kp, filepath.Join(dir, "cosign"), false)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	notPEM := write("garbage.key", []byte("not a key\n"))
	block, _ := pem.Decode(kp.PrivatePEM)
	damaged := write("damaged.key", pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: []byte(`{"kdf":`)}))
	rsaLabel := write("rsa.key", relabel(t, kp.PrivatePEM, "RSA PRIVATE KEY"))
	missing := filepath.Join(dir, "missing.key")

	tests := []struct {
		name    string
		load    func() error
		file    string
		wantErr []string
	}{
		{"private key is not PEM", func() error { _, err := LoadPrivateKey(notPEM, testPassword); return err },
			notPEM, []string{"not a PEM file", "strata keys generate"}},
		{"public key given as private key", func() error { _, err := LoadPrivateKey(pubFile, testPassword); return err },
			pubFile, []string{`PEM block is "PUBLIC KEY", want "ENCRYPTED SIGSTORE PRIVATE KEY"`, "strata keys generate"}},
		{"unencrypted PEM type", func() error { _, err := LoadPrivateKey(rsaLabel, testPassword); return err },
			rsaLabel, []string{`PEM block is "RSA PRIVATE KEY"`}},
		{"damaged encrypted body", func() error { _, err := LoadPrivateKey(damaged, testPassword); return err },
			damaged, []string{"decrypt:", "cosign generate-key-pair"}},
		{"missing private key", func() error { _, err := LoadPrivateKey(missing, testPassword); return err },
			missing, []string{"no such file", "create one with `strata keys generate`"}},
		{"private key given as public key", func() error { _, err := LoadPublicKey(privFile); return err },
			privFile, []string{`PEM block is "ENCRYPTED SIGSTORE PRIVATE KEY", want "PUBLIC KEY"`, "cosign.pub"}},
		{"public key is not PEM", func() error { _, err := LoadPublicKey(notPEM); return err },
			notPEM, []string{"not a PEM file", "cosign.pub"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.load()
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range append(tc.wantErr, tc.file) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestReadPassword(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	os.WriteFile(file, []byte("from file\r\n"), 0o600)

	tests := []struct {
		name    string
		env     *string
		file    string
		want    string
		wantErr string
	}{
		{name: "file wins over env, newline trimmed", env: ptr("from env"), file: file, want: "from file"},
		{name: "env", env: ptr("from env"), want: "from env"},
		{name: "empty env is the empty password", env: ptr(""), want: ""},
		{name: "neither", wantErr: "set COSIGN_PASSWORD or pass --password-file"},
		{name: "missing file", file: filepath.Join(dir, "nope"), wantErr: "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != nil {
				t.Setenv(PasswordEnv, *tc.env)
			} else {
				t.Setenv(PasswordEnv, "")
				os.Unsetenv(PasswordEnv)
			}
			got, err := ReadPassword(tc.file)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func ptr(s string) *string { return &s }

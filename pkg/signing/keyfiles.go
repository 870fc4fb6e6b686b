package signing

import (
	"crypto"
	"errors"
	"fmt"
	"os"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/strata-dev/strata/pkg/fileutil"
)

// KeyFiles are the paths of a key pair written with prefix p: p.key and
// p.pub, as cosign generate-key-pair names them.
func KeyFiles(prefix string) (privateFile, publicFile string) {
	return prefix + ".key", prefix + ".pub"
}

// WriteKeyPair writes kp to prefix.key (mode 0600) and prefix.pub. Unless
// force is set it refuses to replace either file: overwriting a signing key
// silently would orphan every signature made with it.
func WriteKeyPair(kp *KeyPair, prefix string, force bool) (privateFile, publicFile string, err error) {
	privateFile, publicFile = KeyFiles(prefix)
	if !force {
		for _, f := range []string{privateFile, publicFile} {
			if fileutil.Exists(f) {
				return "", "", fmt.Errorf("%s already exists: pass --force to replace it, or choose another --output-prefix", f)
			}
		}
	}
	if err := fileutil.WriteAtomic(privateFile, kp.PrivatePEM, 0o600); err != nil {
		return "", "", err
	}
	if err := fileutil.WriteAtomic(publicFile, kp.PublicPEM, 0o644); err != nil {
		return "", "", err
	}
	return privateFile, publicFile, nil
}

// LoadPrivateKey reads a cosign private key file and returns a signer that
// hashes with SHA-256, as cosign signs.
func LoadPrivateKey(file string, password []byte) (signature.SignerVerifier, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w (create one with `strata keys generate`)", err)
	}
	key, err := DecodePrivateKey(data, password)
	switch {
	case errors.Is(err, ErrWrongPassword):
		return nil, fmt.Errorf("private key %s: %w (set COSIGN_PASSWORD or --password-file to the password it was generated with)", file, err)
	case err != nil:
		return nil, fmt.Errorf("private key %s: %w (expected a cosign.key from `strata keys generate` or `cosign generate-key-pair`)", file, err)
	}
	sv, err := signature.LoadSignerVerifier(key, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", file, err)
	}
	return sv, nil
}

// LoadPublicKey reads a PEM public key file (cosign.pub) and returns a
// SHA-256 verifier for it.
func LoadPublicKey(file string) (signature.Verifier, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	pub, err := DecodePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w (expected the cosign.pub written next to the private key, PEM \"PUBLIC KEY\")", file, err)
	}
	return verifierFor(pub, file)
}

// VerifiersFromPublicKeys wraps keys for Verify, e.g. for keys a webhook
// read from a Secret rather than from files.
func VerifiersFromPublicKeys(keys []crypto.PublicKey) ([]signature.Verifier, error) {
	out := make([]signature.Verifier, 0, len(keys))
	for i, k := range keys {
		v, err := verifierFor(k, fmt.Sprintf("#%d", i+1))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func verifierFor(pub crypto.PublicKey, name string) (signature.Verifier, error) {
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", name, err)
	}
	return v, nil
}

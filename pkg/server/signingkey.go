package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/strata-dev/strata/pkg/fileutil"
	"github.com/strata-dev/strata/pkg/layout"
	"github.com/strata-dev/strata/pkg/signing"
)

// systemKey is the server's image signing key.
type systemKey struct {
	signer    signature.Signer
	publicPEM []byte
}

// ensureSigningKey loads the server's signing key, creating it on first
// start. The private key is encrypted like cosign's, with a random password
// kept beside it (mode 0600) so that `strata image sign --cluster-key` and
// cosign (COSIGN_PASSWORD=$(cat cosign.password)) can both use it.
func ensureSigningKey(l layout.Layout) (*systemKey, error) {
	keyFile, pubFile, pwFile := l.SigningKey()
	if !fileutil.Exists(keyFile) {
		if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		raw := make([]byte, 24)
		if _, err := rand.Read(raw); err != nil {
			return nil, fmt.Errorf("signing key password: %w", err)
		}
		if err := fileutil.WriteAtomic(pwFile, []byte(hex.EncodeToString(raw)), 0o600); err != nil {
			return nil, err
		}
		kp, err := signing.GenerateKeyPair([]byte(hex.EncodeToString(raw)))
		if err != nil {
			return nil, err
		}
		if _, _, err := signing.WriteKeyPair(kp, l.SigningKeyPrefix(), true); err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
	}
	password, err := signing.ReadPassword(pwFile)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	signer, err := signing.LoadPrivateKey(keyFile, password)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	pub, err := os.ReadFile(pubFile)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return &systemKey{signer: signer, publicPEM: pub}, nil
}

package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// PEM block types of cosign's key files. cosign wrote the "COSIGN" spelling
// before the format moved into sigstore; both hold the same encrypted JSON.
const (
	PrivateKeyPEMType       = "ENCRYPTED SIGSTORE PRIVATE KEY"
	LegacyPrivateKeyPEMType = "ENCRYPTED COSIGN PRIVATE KEY"
	PublicKeyPEMType        = "PUBLIC KEY"
)

// ErrWrongPassword is returned when a private key does not decrypt: the
// secretbox authentication fails, which almost always means the password is
// not the one the key was written with.
var ErrWrongPassword = errors.New("wrong password")

// KeyPair is a private key in cosign's encrypted PEM form with its public
// key, ready to be written to cosign.key and cosign.pub.
type KeyPair struct {
	PrivatePEM []byte
	PublicPEM  []byte
}

// GenerateKeyPair creates an ECDSA P-256 key, the only kind cosign
// generate-key-pair makes, and encrypts it with password.
func GenerateKeyPair(password []byte) (*KeyPair, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ECDSA P-256 key: %w", err)
	}
	return EncodeKeyPair(priv, password)
}

// EncodeKeyPair encrypts priv as cosign does: PKCS#8 DER, sealed by
// encrypted.Encrypt (scrypt + NaCl secretbox, JSON), in a PEM block.
func EncodeKeyPair(priv crypto.Signer, password []byte) (*KeyPair, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode private key as PKCS#8: %w", err)
	}
	sealed, err := encrypted.Encrypt(der, password)
	if err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return &KeyPair{
		PrivatePEM: pem.EncodeToMemory(&pem.Block{Type: PrivateKeyPEMType, Bytes: sealed}),
		PublicPEM:  pub,
	}, nil
}

// DecodePrivateKey decrypts a cosign private key. Errors say what is wrong
// with the data; callers add which file it came from.
func DecodePrivateKey(data, password []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not a PEM file")
	}
	if block.Type != PrivateKeyPEMType && block.Type != LegacyPrivateKeyPEMType {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, PrivateKeyPEMType)
	}
	der, err := encrypted.Decrypt(block.Bytes, password)
	if err != nil {
		// Decrypt only fails this way when the secretbox does not open; other
		// failures (bad JSON, unknown KDF) mean a damaged file.
		if strings.HasSuffix(err.Error(), "decryption failed") {
			return nil, ErrWrongPassword
		}
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse decrypted PKCS#8 key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
	return signer, nil
}

// DecodePublicKey parses a PEM "PUBLIC KEY" (PKIX) block.
func DecodePublicKey(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not a PEM file")
	}
	if block.Type != PublicKeyPEMType {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, PublicKeyPEMType)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PKIX public key: %w", err)
	}
	if err := cryptoutils.ValidatePubKey(pub); err != nil {
		return nil, fmt.Errorf("unusable public key: %w", err)
	}
	return pub, nil
}

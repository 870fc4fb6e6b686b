package signing

import (
	"context"
	"crypto"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/strata-dev/strata/pkg/registry"
	"github.com/strata-dev/strata/pkg/registry/registrytest"
)

// startRegistry runs the embedded registry on a free loopback port.
func startRegistry(t *testing.T) string { return registrytest.Start(t) }

// pushImage builds a one-file image whose digest depends on content and
// pushes it to ref; it returns the pushed digest.
func pushImage(t *testing.T, ref, content string) name.Digest {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\necho "+content+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := registry.Build(registry.ImageSpec{Binary: exe})
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := registry.Push(img, ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := name.NewDigest(pushed)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// newKey is an ECDSA P-256 / SHA-256 key, as cosign generate-key-pair makes.
func newKey(t *testing.T) signature.SignerVerifier {
	t.Helper()
	sv, _, err := signature.NewDefaultECDSASignerVerifier()
	if err != nil {
		t.Fatal(err)
	}
	return sv
}

// verifierOf returns the public half of sv as Verify takes it.
func verifierOf(t *testing.T, sv signature.SignerVerifier) signature.Verifier {
	t.Helper()
	pub, err := sv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	vs, err := VerifiersFromPublicKeys([]crypto.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	return vs[0]
}

func mustSign(t *testing.T, ref string, sv signature.SignerVerifier) *SignResult {
	t.Helper()
	res, err := Sign(context.Background(), ref, sv)
	if err != nil {
		t.Fatalf("sign %s: %v", ref, err)
	}
	return res
}

// copyManifest puts the manifest at from under the tag to as well, the way
// someone replaying a signature onto another image would.
func copyManifest(t *testing.T, from, to string) {
	t.Helper()
	src, _ := name.ParseReference(from)
	dst, _ := name.NewTag(to)
	desc, err := remote.Get(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(dst, desc); err != nil {
		t.Fatal(err)
	}
}

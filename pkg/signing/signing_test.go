package signing

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/strata-dev/strata/pkg/registry/registrytest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/signature"
)

func TestSignVerify(t *testing.T) {
	addr := startRegistry(t)
	keyA, keyB := newKey(t), newKey(t)
	pubA, pubB := verifierOf(t, keyA), verifierOf(t, keyB)

	tests := []struct {
		name string
		// prepare pushes and signs what the case needs under ref and
		// returns the error Verify must give ("" for success).
		prepare func(t *testing.T, ref string) (wantErr string)
		keys    []signature.Verifier
		// byDigest verifies repo@digest instead of the tag.
		byDigest bool
	}{
		{
			name: "signed image verifies",
			prepare: func(t *testing.T, ref string) string {
				pushImage(t, ref, "one")
				mustSign(t, ref, keyA)
				return ""
			},
			keys: []signature.Verifier{pubA},
		},
		{
			name: "digest reference verifies",
			prepare: func(t *testing.T, ref string) string {
				pushImage(t, ref, "one")
				mustSign(t, ref, keyA)
				return ""
			},
			keys:     []signature.Verifier{pubA},
			byDigest: true,
		},
		{
			name: "wrong key",
			prepare: func(t *testing.T, ref string) string {
				pushImage(t, ref, "one")
				mustSign(t, ref, keyA)
				return "signature does not match any of 1 keys"
			},
			keys: []signature.Verifier{pubB},
		},
		{
			name: "unsigned image",
			prepare: func(t *testing.T, ref string) string {
				d := pushImage(t, ref, "one")
				return fmt.Sprintf("no signatures found for %s (looked for tag %s and OCI referrers)", ref, SignatureTag(d).TagStr())
			},
			keys: []signature.Verifier{pubA},
		},
		{
			name: "tag re-pushed with another image after signing",
			prepare: func(t *testing.T, ref string) string {
				pushImage(t, ref, "one")
				mustSign(t, ref, keyA)
				pushImage(t, ref, "two")
				return "no signatures found for " + ref
			},
			keys: []signature.Verifier{pubA},
		},
		{
			name: "signature replayed onto another image",
			prepare: func(t *testing.T, ref string) string {
				d1 := pushImage(t, ref, "one")
				res := mustSign(t, ref, keyA)
				d2 := pushImage(t, ref, "two")
				copyManifest(t, res.SignatureTag.String(), SignatureTag(d2).String())
				return fmt.Sprintf("signature is for digest %s but %s is %s", d1.DigestStr(), ref, d2.DigestStr())
			},
			keys: []signature.Verifier{pubA},
		},
		{
			name: "key rotation: signed by A, trusted [B, A]",
			prepare: func(t *testing.T, ref string) string {
				pushImage(t, ref, "one")
				mustSign(t, ref, keyA)
				return ""
			},
			keys: []signature.Verifier{pubB, pubA},
		},
		{
			name: "key rotation: signed by A then B, trusted [B]",
			prepare: func(t *testing.T, ref string) string {
				pushImage(t, ref, "one")
				mustSign(t, ref, keyA)
				if res := mustSign(t, ref, keyB); res.Signatures != 2 {
					t.Errorf("after signing with a second key the tag holds %d signatures, want 2", res.Signatures)
				}
				return ""
			},
			keys: []signature.Verifier{pubB},
		},
		{
			name: "two wrong keys",
			prepare: func(t *testing.T, ref string) string {
				pushImage(t, ref, "one")
				mustSign(t, ref, keyA)
				return "signature does not match any of 2 keys"
			},
			keys: []signature.Verifier{pubB, verifierOf(t, newKey(t))},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// One repository per case keeps the cases independent.
			ref := fmt.Sprintf("%s/case%d/app:v1", addr, i)
			wantErr := tc.prepare(t, ref)
			target := ref
			if tc.byDigest {
				d, err := remote.Head(mustParse(t, ref))
				if err != nil {
					t.Fatal(err)
				}
				target = fmt.Sprintf("%s/case%d/app@%s", addr, i, d.Digest)
			}
			got, err := Verify(context.Background(), target, tc.keys)
			if wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				d, _ := remote.Head(mustParse(t, ref))
				if got != d.Digest.String() {
					t.Fatalf("Verify returned %s, want the image digest %s", got, d.Digest)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("Verify error %v, want one containing %q", err, wantErr)
			}
			// Callers such as a webhook branch on the type, not the text.
			var (
				noSigs   *NoSignaturesError
				wrongKey *KeyMismatchError
				wrongImg *DigestMismatchError
			)
			switch {
			case strings.HasPrefix(wantErr, "no signatures found"):
				if !errors.As(err, &noSigs) {
					t.Errorf("error is %T, want *NoSignaturesError", err)
				}
			case strings.HasPrefix(wantErr, "signature does not match"):
				if !errors.As(err, &wrongKey) {
					t.Errorf("error is %T, want *KeyMismatchError", err)
				}
			case strings.HasPrefix(wantErr, "signature is for digest"):
				if !errors.As(err, &wrongImg) {
					t.Errorf("error is %T, want *DigestMismatchError", err)
				}
			}
		})
	}
}

func mustParse(t *testing.T, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSignatureLayout checks the .sig image against cosign's
// SIGNATURE_SPEC.md with nothing from this package, so a verifier that only
// knows the spec (cosign) reads what Sign writes.
func TestSignatureLayout(t *testing.T) {
	addr := startRegistry(t)
	ref := addr + "/team/app:v1"
	d := pushImage(t, ref, "one")
	key := newKey(t)
	res := mustSign(t, ref, key)

	wantTag := fmt.Sprintf("%s/team/app:sha256-%s.sig", addr, d.DigestStr()[len("sha256:"):])
	if res.SignatureTag.String() != wantTag || res.Image != d || res.Signatures != 1 || res.AlreadySigned {
		t.Fatalf("result %+v, want tag %s, image %s, 1 new signature", res, wantTag, d)
	}
	img, err := remote.Image(mustParse(t, wantTag))
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || len(m.Layers) != 1 {
		t.Fatalf("manifest media type %s with %d layers, want an OCI manifest with 1", m.MediaType, len(m.Layers))
	}
	l := m.Layers[0]
	if l.MediaType != SimpleSigningMediaType {
		t.Errorf("layer media type %s", l.MediaType)
	}
	payload, err := readBlob(img, l)
	if err != nil {
		t.Fatal(err)
	}
	wantPayload := fmt.Sprintf(`{"critical":{"identity":{"docker-reference":"%s/team/app"},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":null}`, addr, d.DigestStr())
	if string(payload) != wantPayload {
		t.Errorf("payload\n %s\nwant\n %s", payload, wantPayload)
	}
	sig, err := base64.StdEncoding.DecodeString(l.Annotations["dev.cosignproject.cosign/signature"])
	if err != nil {
		t.Fatalf("signature annotation: %v", err)
	}
	pub, _ := key.PublicKey()
	h := sha256.Sum256(payload)
	if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), h[:], sig) {
		t.Error("annotation is not an ASN.1 ECDSA signature over SHA-256 of the payload")
	}

	// Signing again with the same key changes nothing.
	again := mustSign(t, ref, key)
	if !again.AlreadySigned || again.Signatures != 1 {
		t.Errorf("second signing: %+v, want AlreadySigned with 1 signature", again)
	}
}

func TestVerifyErrors(t *testing.T) {
	addr := startRegistry(t)
	key := verifierOf(t, newKey(t))

	// A port nothing listens on: connection refused.
	dead := closedAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Verify(ctx, dead+"/app:v1", []signature.Verifier{key})
	var unreachable *RegistryUnreachableError
	if !errors.As(err, &unreachable) || !strings.HasPrefix(err.Error(), "registry unreachable: ") {
		t.Errorf("closed port: got %v, want a RegistryUnreachableError", err)
	}

	// An expired deadline is an outage too, not a missing signature.
	expired, cancel2 := context.WithTimeout(context.Background(), -time.Second)
	defer cancel2()
	if _, err := Verify(expired, addr+"/app:v1", []signature.Verifier{key}); !errors.As(err, &unreachable) {
		t.Errorf("expired context: got %v, want a RegistryUnreachableError", err)
	}

	if _, err := Verify(context.Background(), addr+"/missing:v1", []signature.Verifier{key}); err == nil || !strings.Contains(err.Error(), "not found in the registry") {
		t.Errorf("missing image: got %v", err)
	}
	if _, err := Verify(context.Background(), "Bad Name!", []signature.Verifier{key}); err == nil || !strings.Contains(err.Error(), "use e.g. localhost:5000/app:v1") {
		t.Errorf("bad name: got %v", err)
	}
	if _, err := Verify(context.Background(), addr+"/app:v1", nil); err == nil || !strings.Contains(err.Error(), "no public keys") {
		t.Errorf("no keys: got %v", err)
	}
}

// closedAddr returns a loopback address that refuses connections.
func closedAddr(t *testing.T) string { return registrytest.FreeAddr(t) }

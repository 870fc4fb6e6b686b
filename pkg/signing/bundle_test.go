package signing

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
	"google.golang.org/protobuf/encoding/protojson"
)

// inTotoStatementFor is the statement cosign 3 signs for an image when it
// writes a bundle instead of a .sig tag.
func inTotoStatementFor(d name.Digest, predicateType string) []byte {
	st := map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": d.Context().Name(), "digest": map[string]string{"sha256": strings.TrimPrefix(d.DigestStr(), "sha256:")}}},
		"predicateType": predicateType,
		"predicate":     map[string]any{},
	}
	b, _ := json.Marshal(st)
	return b
}

// dsseBundle signs payload with sv through go-securesystemslib's envelope
// signer (not this package's code) and wraps it in a keyed bundle.
func dsseBundle(t *testing.T, sv signature.SignerVerifier, payloadType string, payload []byte) []byte {
	t.Helper()
	pub, _ := sv.PublicKey()
	es, err := ssldsse.NewEnvelopeSigner(&sigdsse.SignerAdapter{SignatureSigner: sv, Pub: pub})
	if err != nil {
		t.Fatal(err)
	}
	env, err := es.SignPayload(context.Background(), payloadType, payload)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	return marshalBundle(t, &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
		Payload:     payload,
		PayloadType: payloadType,
		Signatures:  []*protodsse.Signature{{Sig: sig, Keyid: "some-hint"}},
	}})
}

// messageBundle signs the image manifest itself, by digest.
func messageBundle(t *testing.T, sv signature.SignerVerifier, d name.Digest) []byte {
	t.Helper()
	raw, err := remote.Get(d)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sv.SignMessage(bytes.NewReader(raw.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw.Manifest)
	return marshalBundle(t, &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
		MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: sum[:]},
		Signature:     sig,
	}})
}

func marshalBundle(t *testing.T, content any) []byte {
	t.Helper()
	b := &protobundle.Bundle{
		MediaType: BundleMediaTypeV03,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: "cosign.pub"}},
		},
	}
	switch c := content.(type) {
	case *protobundle.Bundle_DsseEnvelope:
		b.Content = c
	case *protobundle.Bundle_MessageSignature:
		b.Content = c
	}
	out, err := protojson.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rawManifest lets remote.Put upload a manifest built by hand.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// attachBundle stores bundle as an OCI 1.1 referrer of subject laid out as
// cosign's BUNDLE_SPEC.md describes: empty config, one bundle layer,
// artifactType and subject set.
func attachBundle(t *testing.T, subject name.Digest, artifactType string, bundle []byte) {
	t.Helper()
	repo := subject.Context()
	layer := static.NewLayer(bundle, types.MediaType(artifactType))
	config := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	for _, l := range []v1.Layer{layer, config} {
		if err := remote.WriteLayer(repo, l); err != nil {
			t.Fatal(err)
		}
	}
	desc := func(l v1.Layer) v1.Descriptor {
		d, _ := l.Digest()
		n, _ := l.Size()
		mt, _ := l.MediaType()
		return v1.Descriptor{MediaType: mt, Digest: d, Size: n}
	}
	sub, err := remote.Head(subject)
	if err != nil {
		t.Fatal(err)
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  artifactType,
		Config:        desc(config),
		Layers:        []v1.Descriptor{desc(layer)},
		Subject:       &v1.Descriptor{MediaType: sub.MediaType, Digest: sub.Digest, Size: sub.Size},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if err := remote.Put(repo.Digest("sha256:"+hex.EncodeToString(sum[:])), rawManifest{raw, types.OCIManifestSchema1}); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyBundleReferrers(t *testing.T) {
	addr := startRegistry(t)
	keyA, keyB := newKey(t), newKey(t)
	pubA := verifierOf(t, keyA)

	tests := []struct {
		name string
		// attach signs d in some form and returns the error Verify must
		// give with key A trusted ("" for success).
		attach func(t *testing.T, ref string, d name.Digest) string
	}{
		{
			name: "DSSE in-toto statement, cosign 3 layout",
			attach: func(t *testing.T, _ string, d name.Digest) string {
				attachBundle(t, d, BundleMediaTypeV03, dsseBundle(t, keyA, inTotoPayloadType, inTotoStatementFor(d, CosignSignPredicateType)))
				return ""
			},
		},
		{
			name: "DSSE simple-signing payload, bundle v0.2",
			attach: func(t *testing.T, _ string, d name.Digest) string {
				p, _ := newSimpleSigningPayload(d)
				attachBundle(t, d, BundleMediaTypeV02, dsseBundle(t, keyA, SimpleSigningMediaType, p))
				return ""
			},
		},
		{
			name: "message signature over the manifest",
			attach: func(t *testing.T, _ string, d name.Digest) string {
				attachBundle(t, d, BundleMediaTypeV03, messageBundle(t, keyA, d))
				return ""
			},
		},
		{
			name: "bundle signed by an untrusted key",
			attach: func(t *testing.T, _ string, d name.Digest) string {
				attachBundle(t, d, BundleMediaTypeV03, dsseBundle(t, keyB, inTotoPayloadType, inTotoStatementFor(d, CosignSignPredicateType)))
				return "signature does not match any of 1 keys"
			},
		},
		{
			name: "attestation is not a signature",
			attach: func(t *testing.T, _ string, d name.Digest) string {
				attachBundle(t, d, BundleMediaTypeV03, dsseBundle(t, keyA, inTotoPayloadType, inTotoStatementFor(d, "https://slsa.dev/provenance/v1")))
				return "it is an attestation, not a signature"
			},
		},
		{
			name: "statement names another image",
			attach: func(t *testing.T, ref string, d name.Digest) string {
				other := pushImage(t, strings.Replace(ref, ":v1", ":other", 1), "other")
				attachBundle(t, d, BundleMediaTypeV03, dsseBundle(t, keyA, inTotoPayloadType, inTotoStatementFor(other, CosignSignPredicateType)))
				return fmt.Sprintf("signature is for digest %s but %s is %s", other.DigestStr(), ref, d.DigestStr())
			},
		},
		{
			name: "bad .sig tag signature does not hide a good bundle",
			attach: func(t *testing.T, ref string, d name.Digest) string {
				mustSign(t, ref, keyB)
				attachBundle(t, d, BundleMediaTypeV03, dsseBundle(t, keyA, inTotoPayloadType, inTotoStatementFor(d, CosignSignPredicateType)))
				return ""
			},
		},
		{
			name: "unparsable bundle",
			attach: func(t *testing.T, ref string, d name.Digest) string {
				attachBundle(t, d, BundleMediaTypeV03, []byte(`{"mediaType": 7}`))
				return "no signatures found for " + ref + " (looked for tag " + SignatureTag(d).TagStr() + " and OCI referrers); unreadable: referrer sha256:"
			},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ref := fmt.Sprintf("%s/bundle%d/app:v1", addr, i)
			d := pushImage(t, ref, "one")
			wantErr := tc.attach(t, ref, d)
			got, err := Verify(context.Background(), ref, []signature.Verifier{pubA})
			if wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got != d.DigestStr() {
					t.Fatalf("Verify returned %s, want %s", got, d.DigestStr())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("Verify error %v, want one containing %q", err, wantErr)
			}
		})
	}
}

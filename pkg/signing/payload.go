package signing

import (
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// newSimpleSigningPayload is the document a .sig layer signs: it names the
// manifest digest, which is what binds a detached signature to one image.
func newSimpleSigningPayload(d name.Digest) ([]byte, error) {
	b, err := json.Marshal(payload.Cosign{Image: d})
	if err != nil {
		return nil, fmt.Errorf("encode signature payload: %w", err)
	}
	return b, nil
}

// simpleSigningDigest returns the manifest digest a verified simple-signing
// payload names. docker-reference is not checked, per SIGNATURE_SPEC.md: an
// image copied to another registry keeps its signatures valid.
func simpleSigningDigest(p []byte) (string, error) {
	var ss payload.SimpleContainerImage
	if err := json.Unmarshal(p, &ss); err != nil {
		return "", fmt.Errorf("signed payload is not simple-signing JSON: %w", err)
	}
	if ss.Critical.Type != payload.CosignSignatureType {
		return "", fmt.Errorf("signed payload has type %q, want %q", ss.Critical.Type, payload.CosignSignatureType)
	}
	if ss.Critical.Image.DockerManifestDigest == "" {
		return "", fmt.Errorf("signed payload names no docker-manifest-digest")
	}
	return ss.Critical.Image.DockerManifestDigest, nil
}

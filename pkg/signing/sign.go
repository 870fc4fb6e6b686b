package signing

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// SignResult says what Sign did.
type SignResult struct {
	// Image is the signed manifest, by digest.
	Image name.Digest
	// SignatureTag holds the image's signatures.
	SignatureTag name.Tag
	// Signatures is how many signatures the tag holds now.
	Signatures int
	// AlreadySigned is set when the key had signed this digest before and
	// nothing was written.
	AlreadySigned bool
}

// Sign resolves ref to its manifest digest, signs a simple-signing payload
// naming that digest with signer, and stores the signature as a layer of the
// sha256-<hex>.sig image in the same repository, keeping the signatures
// already there. Signing is idempotent per key: ECDSA signatures differ on
// every run, so without the check each re-run would add a layer.
//
// Two signers racing on one image can lose a signature (the tag is
// read-modify-written); sign again to add it back.
func Sign(ctx context.Context, ref string, signer signature.Signer, opts ...remote.Option) (*SignResult, error) {
	r, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	opts = withContext(ctx, opts)
	d, err := resolveDigest(r, opts)
	if err != nil {
		return nil, err
	}
	res := &SignResult{Image: d, SignatureTag: SignatureTag(d)}

	payload, err := newSimpleSigningPayload(d)
	if err != nil {
		return nil, err
	}
	existing, err := fetchSignatureImage(res.SignatureTag, opts)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		n, signed, err := signedBy(res.SignatureTag, existing, payload, signer)
		if err != nil {
			return nil, err
		}
		if signed {
			res.Signatures, res.AlreadySigned = n, true
			return res, nil
		}
	}

	sig, err := signer.SignMessage(bytes.NewReader(payload), options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", d, err)
	}
	img, err := appendSignature(existing, payload, sig)
	if err != nil {
		return nil, err
	}
	if err := remote.Write(res.SignatureTag, img, opts...); err != nil {
		return nil, registryError(err, "push signature "+res.SignatureTag.String())
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("signature manifest: %w", err)
	}
	res.Signatures = len(m.Layers)
	return res, nil
}

// signedBy reports whether img already holds a signature of exactly payload
// by signer's key, and how many layers it has.
func signedBy(tag name.Tag, img v1.Image, payload []byte, signer signature.Signer) (layers int, signed bool, err error) {
	pub, err := signer.PublicKey()
	if err != nil {
		return 0, false, fmt.Errorf("public key of signer: %w", err)
	}
	v, err := verifierFor(pub, "of signer")
	if err != nil {
		return 0, false, err
	}
	m, err := img.Manifest()
	if err != nil {
		return 0, false, registryError(err, "read signature manifest "+tag.String())
	}
	// Layers are content-addressed: a layer with the payload's digest holds
	// the same bytes, so no blob needs fetching.
	h, _, err := v1.SHA256(bytes.NewReader(payload))
	if err != nil {
		return 0, false, fmt.Errorf("digest of payload: %w", err)
	}
	for _, l := range m.Layers {
		if l.Digest != h {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(l.Annotations[SignatureAnnotation])
		if err != nil {
			continue
		}
		if v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(payload)) == nil {
			return len(m.Layers), true, nil
		}
	}
	return len(m.Layers), false, nil
}

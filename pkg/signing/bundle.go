package signing

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"google.golang.org/protobuf/encoding/protojson"
)

// parseBundle turns a sigstore bundle (JSON) into evidence. Only the signed
// content is used: verification material (a public key hint, or a Fulcio
// certificate for keyless signing) and tlog entries are not, because this
// package verifies against the caller's keys only.
func parseBundle(source string, data []byte) (evidence, error) {
	var b protobundle.Bundle
	// Newer bundle versions may add fields; they do not change what a
	// keyed signature covers.
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("not a sigstore bundle: %w", err)
	}
	switch {
	case b.GetDsseEnvelope() != nil:
		env := b.GetDsseEnvelope()
		e := &dsseEnvelope{source: source, payloadType: env.GetPayloadType(), payload: env.GetPayload()}
		for _, s := range env.GetSignatures() {
			e.signatures = append(e.signatures, s.GetSig())
		}
		if len(e.signatures) == 0 {
			return nil, errors.New("DSSE envelope has no signatures")
		}
		return e, nil
	case b.GetMessageSignature() != nil:
		ms := b.GetMessageSignature()
		md := ms.GetMessageDigest()
		if md.GetAlgorithm() != protocommon.HashAlgorithm_SHA2_256 || len(md.GetDigest()) != crypto.SHA256.Size() {
			return nil, fmt.Errorf("message signature uses digest algorithm %s; only SHA2_256 is supported", md.GetAlgorithm())
		}
		return &messageSignature{source: source, digest: md.GetDigest(), signature: ms.GetSignature()}, nil
	default:
		return nil, errors.New("bundle has neither a DSSE envelope nor a message signature")
	}
}

// messageSignature signs an artifact by its digest. Attached to an image,
// the artifact is the image manifest, so the digest it signs is the
// manifest digest itself; this is how cosign verifies such bundles too.
type messageSignature struct {
	source    string
	digest    []byte
	signature []byte
}

func (m *messageSignature) String() string { return m.source }

func (m *messageSignature) check(v signature.Verifier) ([]string, bool, error) {
	// The bundle carries only the digest, so verify against it directly.
	err := v.VerifySignature(bytes.NewReader(m.signature), nil,
		options.WithDigest(m.digest), options.WithCryptoSignerOpts(crypto.SHA256))
	if err != nil {
		return nil, false, nil
	}
	return []string{"sha256:" + hex.EncodeToString(m.digest)}, true, nil
}

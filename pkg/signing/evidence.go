package signing

import (
	"bytes"

	"github.com/sigstore/sigstore/pkg/signature"
)

// evidence is one signature found for an image, in whichever form it was
// stored. Verify treats all forms alike: a signature counts when it verifies
// with a trusted key and the content it signs names the image's digest.
type evidence interface {
	// check verifies the signature with v. verified reports whether v made
	// it; only then are digests (the manifest digests the signed content
	// names) or err (why that content is unusable) meaningful.
	check(v signature.Verifier) (digests []string, verified bool, err error)
	// String says where the signature was found, for error messages.
	String() string
}

// simpleSigning is a cosign .sig layer: a simple-signing payload and a
// signature over its bytes.
type simpleSigning struct {
	source    string
	payload   []byte
	signature []byte
}

func (s *simpleSigning) String() string { return s.source }

func (s *simpleSigning) check(v signature.Verifier) ([]string, bool, error) {
	if err := v.VerifySignature(bytes.NewReader(s.signature), bytes.NewReader(s.payload)); err != nil {
		return nil, false, nil
	}
	d, err := simpleSigningDigest(s.payload)
	if err != nil {
		return nil, true, err
	}
	return []string{d}, true, nil
}

package signing

import (
	"bytes"
	"encoding/json"
	"fmt"

	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore/pkg/signature"
)

// dsseEnvelope is a DSSE envelope from a sigstore bundle. The signature
// covers the DSSE pre-authentication encoding of type and payload, so the
// payload type cannot be swapped without breaking it.
type dsseEnvelope struct {
	source      string
	payloadType string
	payload     []byte
	signatures  [][]byte
}

func (e *dsseEnvelope) String() string { return e.source }

func (e *dsseEnvelope) check(v signature.Verifier) ([]string, bool, error) {
	pae := ssldsse.PAE(e.payloadType, e.payload)
	verified := false
	for _, sig := range e.signatures {
		if v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(pae)) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, false, nil
	}
	switch e.payloadType {
	case inTotoPayloadType:
		d, err := statementDigests(e.payload)
		return d, true, err
	case SimpleSigningMediaType:
		d, err := simpleSigningDigest(e.payload)
		if err != nil {
			return nil, true, err
		}
		return []string{d}, true, nil
	default:
		return nil, true, fmt.Errorf("signed DSSE payload has type %q; only %q and %q name an image", e.payloadType, inTotoPayloadType, SimpleSigningMediaType)
	}
}

// inTotoStatement holds the fields of an in-toto statement (v0.1 or v1)
// that say what was signed and why.
type inTotoStatement struct {
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
}

// statementDigests returns the sha256 subjects of a cosign signing
// statement. Statements of other predicate types are attestations (an
// SBOM, provenance) made with the same key: they say something about the
// image, not that the key holder approves it, so they are not accepted.
func statementDigests(p []byte) ([]string, error) {
	var st inTotoStatement
	if err := json.Unmarshal(p, &st); err != nil {
		return nil, fmt.Errorf("signed payload is not an in-toto statement: %w", err)
	}
	if st.PredicateType != CosignSignPredicateType {
		return nil, fmt.Errorf("signed statement has predicate type %q, not %q: it is an attestation, not a signature", st.PredicateType, CosignSignPredicateType)
	}
	var out []string
	for _, s := range st.Subject {
		if h, ok := s.Digest["sha256"]; ok {
			out = append(out, "sha256:"+h)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("signed statement has no sha256 subject")
	}
	return out, nil
}

package signing

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Verify resolves ref to its manifest digest and checks that the image has
// a signature that verifies with any of verifiers (several keys allow a
// rotation: old and new key both accepted) over content naming that digest.
// It returns the digest, so callers can pin what they admitted.
//
// Tag-based signatures (sha256-<hex>.sig) are checked first, then sigstore
// bundles attached as OCI referrers. A missing or bad signature is a
// NoSignaturesError, KeyMismatchError or DigestMismatchError (or a plain
// error when a trusted key signed something that is not an image
// signature, such as an attestation); an outage is a
// RegistryUnreachableError. Other errors (bad name, image not found, HTTP
// errors such as 401) are returned wrapped with what was being done.
//
// ctx bounds every registry request; opts (auth, transport, user agent) are
// passed to go-containerregistry as they are.
func Verify(ctx context.Context, ref string, verifiers []signature.Verifier, opts ...remote.Option) (string, error) {
	if len(verifiers) == 0 {
		return "", errors.New("no public keys to verify with: pass at least one --key")
	}
	r, err := parseRef(ref)
	if err != nil {
		return "", err
	}
	opts = withContext(ctx, opts)
	d, err := resolveDigest(r, opts)
	if err != nil {
		return "", err
	}
	c := &checker{image: ref, want: d.DigestStr(), verifiers: verifiers}

	tag := SignatureTag(d)
	sigImg, err := fetchSignatureImage(tag, opts)
	if err != nil {
		return "", err
	}
	if sigImg != nil {
		evs, problems, err := signatureLayers(tag, sigImg)
		if err != nil {
			return "", err
		}
		if c.accept(evs, problems) {
			return d.DigestStr(), nil
		}
	}

	// Only when the legacy layout did not settle it: most images signed
	// today have no referrers, and this saves a webhook the round trips.
	evs, problems, err := referrerBundles(d, opts)
	if err != nil {
		return "", err
	}
	if c.accept(evs, problems) {
		return d.DigestStr(), nil
	}
	return "", c.failure(tag)
}

// withContext appends ctx last so it overrides any context in opts: the
// caller's deadline must bound the whole verification.
func withContext(ctx context.Context, opts []remote.Option) []remote.Option {
	out := make([]remote.Option, 0, len(opts)+1)
	out = append(out, opts...)
	return append(out, remote.WithContext(ctx))
}

// checker tries every trusted key on every signature found and remembers
// the most telling reason for rejecting them.
type checker struct {
	image     string
	want      string
	verifiers []signature.Verifier

	checked    int
	problems   []string
	wrongImage *DigestMismatchError
	unusable   error
}

// accept reports whether any of evs is a valid signature for the image.
func (c *checker) accept(evs []evidence, problems []string) bool {
	c.checked += len(evs)
	c.problems = append(c.problems, problems...)
	for _, ev := range evs {
		for _, v := range c.verifiers {
			digests, verified, err := ev.check(v)
			if !verified {
				continue
			}
			if err != nil {
				if c.unusable == nil {
					c.unusable = fmt.Errorf("%s is signed by a trusted key, but %s: %w", c.image, ev, err)
				}
				continue
			}
			if slices.Contains(digests, c.want) {
				return true
			}
			if c.wrongImage == nil {
				c.wrongImage = &DigestMismatchError{Image: c.image, Signed: digests[0], Actual: c.want}
			}
		}
	}
	return false
}

func (c *checker) failure(tag name.Tag) error {
	switch {
	case c.checked == 0:
		return &NoSignaturesError{Image: c.image, Tag: tag.TagStr(), Unreadable: c.problems}
	case c.wrongImage != nil:
		// A valid signature of another image is the most likely mistake
		// (or attack): say so rather than blame the keys.
		return c.wrongImage
	case c.unusable != nil:
		return c.unusable
	default:
		return &KeyMismatchError{Image: c.image, Keys: len(c.verifiers), Signatures: c.checked + len(c.problems), Details: c.problems}
	}
}

package signing

import (
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// The media types and annotation keys below are cosign's on-the-wire format;
// changing any of them breaks interoperability with cosign.
const (
	// SimpleSigningMediaType is the media type of a .sig image layer whose
	// content is the signed payload.
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// SignatureAnnotation carries the base64 signature on that layer.
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
	// signatureTagSuffix ends the tag that holds an image's signatures.
	signatureTagSuffix = ".sig"

	// BundleMediaTypeV03 and BundleMediaTypeV02 are the artifact types of
	// sigstore bundles attached as OCI referrers.
	BundleMediaTypeV03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
	BundleMediaTypeV02 = "application/vnd.dev.sigstore.bundle.v0.2+json"

	// inTotoPayloadType is the DSSE payload type of an in-toto statement.
	inTotoPayloadType = "application/vnd.in-toto+json"
	// CosignSignPredicateType is the predicate cosign 3 puts in the in-toto
	// statement it signs when asked for a bundle instead of a .sig tag. Other
	// predicates (SBOMs, provenance) are attestations, not signatures.
	CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"

	// maxBlobSize bounds what is read from a registry for one signature or
	// bundle: both are a few KiB, and a verifier running in an admission
	// webhook must not be made to buffer an arbitrary blob.
	maxBlobSize = 4 << 20
)

// isBundleMediaType reports whether an artifact or layer media type is a
// sigstore bundle of a version this package reads.
func isBundleMediaType(mt string) bool {
	switch mt {
	case BundleMediaTypeV03, BundleMediaTypeV02,
		// Older bundles spelled the version as a media type parameter.
		"application/vnd.dev.sigstore.bundle+json;version=0.3",
		"application/vnd.dev.sigstore.bundle+json;version=0.2":
		return true
	}
	return false
}

// SignatureTag is where cosign's tag-based discovery looks for the
// signatures of the image with digest d: sha256:abc becomes sha256-abc.sig
// in the same repository.
func SignatureTag(d name.Digest) name.Tag {
	return d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + signatureTagSuffix)
}

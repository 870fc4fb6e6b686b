// Package signing signs container images and verifies their signatures in
// the formats sigstore's cosign reads and writes, so that images signed by
// Strata verify with `cosign verify --key` and the other way round.
//
// What is supported:
//
//   - Keys: ECDSA P-256 key pairs in cosign's files (cosign.key, encrypted
//     with a password by go-securesystemslib's "encrypted" package, and
//     cosign.pub, a PKIX public key).
//   - Signing: the tag-based layout of cosign's SIGNATURE_SPEC.md, a
//     simple-signing payload stored in the image's repository under the tag
//     sha256-<hex>.sig, one layer per signature.
//   - Verifying: that layout, and sigstore bundles attached to the image as
//     OCI 1.1 referrers (cosign's BUNDLE_SPEC.md) whose content is a DSSE
//     envelope (an in-toto statement of predicate type
//     https://sigstore.dev/cosign/sign/v1, or a simple-signing payload) or a
//     message signature over the image manifest.
//
// What is not: keyless signing (Fulcio certificates, OIDC identities) and
// transparency logs (Rekor). Verification trusts the public keys it is given
// and nothing else; tlog entries in bundles are ignored, which is what
// `cosign verify --key ... --insecure-ignore-tlog` does.
//
// All registry access goes through go-containerregistry and honours the
// context and the remote options callers pass, so an admission webhook can
// bound each verification with a deadline and share one transport.
package signing

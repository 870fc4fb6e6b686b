package signing

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// parseRef parses an image name with go-containerregistry's defaults, which
// also make loopback registries plain HTTP.
func parseRef(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("image name %q: %w (use e.g. localhost:5000/app:v1 or localhost:5000/app@sha256:...)", ref, err)
	}
	return r, nil
}

// resolveDigest returns the digest of the manifest ref names in the
// registry. A digest reference is resolved too, so that signing or
// verifying an image that is not in the registry fails early and clearly.
func resolveDigest(r name.Reference, opts []remote.Option) (name.Digest, error) {
	desc, err := remote.Head(r, opts...)
	if err == nil {
		return r.Context().Digest(desc.Digest.String()), nil
	}
	if !isUnreachable(err) && !isNotFound(err) {
		// Some registries answer HEAD on manifests badly; GET is the
		// fallback crane uses too.
		got, gerr := remote.Get(r, opts...)
		if gerr == nil {
			return r.Context().Digest(got.Digest.String()), nil
		}
		err = gerr
	}
	if isNotFound(err) {
		return name.Digest{}, fmt.Errorf("image %s not found in the registry: %w", r, err)
	}
	return name.Digest{}, registryError(err, "resolve "+r.String())
}

// Resolve returns the digest that ref names in the registry now, e.g. so
// an admission webhook can pin a tag to what it verified. ctx bounds the
// registry requests; an outage is a RegistryUnreachableError.
func Resolve(ctx context.Context, ref string, opts ...remote.Option) (name.Digest, error) {
	r, err := parseRef(ref)
	if err != nil {
		return name.Digest{}, err
	}
	return resolveDigest(r, withContext(ctx, opts))
}

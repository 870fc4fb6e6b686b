package signing

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// maxBundles bounds how many bundle referrers one verification fetches
// (two requests each): an image anyone can attach artifacts to must not be
// able to stall an admission webhook.
const maxBundles = 32

// referrerBundles finds the sigstore bundles attached to d as OCI 1.1
// referrers. go-containerregistry uses the referrers API and falls back to
// the sha256-<hex> index tag on registries without it.
func referrerBundles(d name.Digest, opts []remote.Option) (evs []evidence, problems []string, err error) {
	idx, err := remote.Referrers(d, opts...)
	if err != nil {
		return nil, nil, registryError(err, "list OCI referrers of "+d.String())
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, nil, registryError(err, "read OCI referrers of "+d.String())
	}
	seen := 0
	for _, desc := range im.Manifests {
		if !isBundleMediaType(desc.ArtifactType) {
			continue
		}
		if seen == maxBundles {
			problems = append(problems, fmt.Sprintf("more than %d bundles attached; the rest were not checked", maxBundles))
			break
		}
		seen++
		source := "referrer " + desc.Digest.String()
		ev, err := fetchBundle(d.Context().Digest(desc.Digest.String()), source, opts)
		if err != nil {
			if isUnreachable(err) {
				return nil, nil, registryError(err, source)
			}
			problems = append(problems, fmt.Sprintf("%s: %v", source, err))
			continue
		}
		evs = append(evs, ev)
	}
	return evs, problems, nil
}

// fetchBundle reads the bundle layer of one referrer artifact manifest.
func fetchBundle(ref name.Digest, source string, opts []remote.Option) (evidence, error) {
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		if !isBundleMediaType(string(l.MediaType)) {
			continue
		}
		data, err := readBlob(img, l)
		if err != nil {
			return nil, err
		}
		return parseBundle(source, data)
	}
	return nil, fmt.Errorf("artifact has no layer of a sigstore bundle media type")
}

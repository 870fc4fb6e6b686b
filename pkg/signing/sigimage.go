package signing

import (
	"encoding/base64"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// fetchSignatureImage returns the image stored under a .sig tag, or nil
// when the tag does not exist (the image has no tag-based signatures).
func fetchSignatureImage(tag name.Tag, opts []remote.Option) (v1.Image, error) {
	img, err := remote.Image(tag, opts...)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, registryError(err, "fetch signatures "+tag.String())
	}
	return img, nil
}

// appendSignature adds a layer holding payload, with sig as its signature
// annotation, to base; a nil base starts a new OCI image as cosign does.
// Earlier layers are kept: during a key rotation an image carries one
// signature per key, and verifiers accept any of them.
func appendSignature(base v1.Image, payload, sig []byte) (v1.Image, error) {
	if base == nil {
		base = mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:       static.NewLayer(payload, types.MediaType(SimpleSigningMediaType)),
		Annotations: map[string]string{SignatureAnnotation: base64.StdEncoding.EncodeToString(sig)},
		MediaType:   types.MediaType(SimpleSigningMediaType),
	})
	if err != nil {
		return nil, fmt.Errorf("add signature layer: %w", err)
	}
	return img, nil
}

// signatureLayers reads every simple-signing layer of a .sig image. Layers
// that cannot be read are reported in problems rather than failing the
// whole image, so one bad layer cannot hide a good signature.
func signatureLayers(tag name.Tag, img v1.Image) (evs []evidence, problems []string, err error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, nil, registryError(err, "read signature manifest "+tag.String())
	}
	for i, l := range m.Layers {
		source := fmt.Sprintf("tag %s layer %d", tag.TagStr(), i+1)
		if string(l.MediaType) != SimpleSigningMediaType {
			continue
		}
		b64, ok := l.Annotations[SignatureAnnotation]
		if !ok {
			problems = append(problems, source+": no "+SignatureAnnotation+" annotation")
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: signature annotation is not base64: %v", source, err))
			continue
		}
		payload, err := readBlob(img, l)
		if err != nil {
			if isUnreachable(err) {
				return nil, nil, registryError(err, source)
			}
			problems = append(problems, fmt.Sprintf("%s: %v", source, err))
			continue
		}
		evs = append(evs, &simpleSigning{source: source, payload: payload, signature: sig})
	}
	return evs, problems, nil
}

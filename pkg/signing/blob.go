package signing

import (
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// blobGetter is what remote images offer to fetch one blob by digest.
type blobGetter interface {
	LayerByDigest(v1.Hash) (v1.Layer, error)
}

// readBlob fetches a small blob (a payload or a bundle) named by desc.
// go-containerregistry checks the digest while reading; the size is bounded
// before anything is fetched.
func readBlob(img blobGetter, desc v1.Descriptor) ([]byte, error) {
	if desc.Size > maxBlobSize {
		return nil, fmt.Errorf("blob %s is %d bytes, more than the %d a signature may have", desc.Digest, desc.Size, maxBlobSize)
	}
	l, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	// Compressed is the blob as stored; signature payloads and bundles are
	// never actually compressed, and Uncompressed would try to gunzip them.
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxBlobSize+1))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", desc.Digest, err)
	}
	if len(data) > maxBlobSize {
		return nil, fmt.Errorf("blob %s is larger than the %d bytes a signature may have", desc.Digest, maxBlobSize)
	}
	return data, nil
}

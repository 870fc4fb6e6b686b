package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// Media types of the CNCF wasm OCI artifact layout (see pkg/registry).
const (
	wasmConfigMediaType = "application/vnd.wasm.config.v0+json"
	wasmLayerMediaType  = "application/wasm"
	ociIndexMediaType   = "application/vnd.oci.image.index.v1+json"
)

// annImageName is the CRI annotation naming the container's image.
const annImageName = "io.kubernetes.cri.image-name"

// store reads images out of containerd's content store over its gRPC API.
// A CNCF wasm artifact has no file system layer, so CRI gives its
// containers an empty root; the module is the artifact's application/wasm
// layer, which the CRI pull left in the content store.
type store struct {
	address, ns string
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	Platform  *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform,omitempty"`
}

type manifest struct {
	MediaType string       `json:"mediaType"`
	Config    descriptor   `json:"config"`
	Layers    []descriptor `json:"layers"`
	Manifests []descriptor `json:"manifests"`
}

// artifactModule returns the module of image if it is a wasm artifact,
// and ok=false for any other image (its module is a file in the root).
func (st *store) artifactModule(ctx context.Context, image string) (module []byte, ok bool, err error) {
	conn, err := grpc.NewClient("unix://"+st.address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, false, fmt.Errorf("connect to containerd at %s: %w", st.address, err)
	}
	defer conn.Close()
	ctx = metadata.AppendToOutgoingContext(ctx, "containerd-namespace", st.ns)
	img, err := imagesapi.NewImagesClient(conn).Get(ctx, &imagesapi.GetImageRequest{Name: image})
	if err != nil {
		return nil, false, fmt.Errorf("image %s in containerd: %w", image, err)
	}
	content := contentapi.NewContentClient(conn)
	target := descriptor{MediaType: img.Image.Target.MediaType, Digest: img.Image.Target.Digest, Size: img.Image.Target.Size}
	m, err := readManifest(ctx, content, target)
	if err != nil {
		return nil, false, err
	}
	if m.MediaType == ociIndexMediaType || len(m.Manifests) > 0 {
		if m, err = readManifest(ctx, content, pickWasm(m.Manifests)); err != nil {
			return nil, false, err
		}
	}
	if m.Config.MediaType != wasmConfigMediaType {
		return nil, false, nil
	}
	for _, l := range m.Layers {
		if l.MediaType == wasmLayerMediaType {
			b, err := readBlob(ctx, content, l, maxModuleSize)
			if err != nil {
				return nil, false, fmt.Errorf("wasm layer of %s: %w", image, err)
			}
			return b, true, nil
		}
	}
	return nil, false, fmt.Errorf("image %s has the wasm artifact config but no %s layer", image, wasmLayerMediaType)
}

// pickWasm chooses an index's wasm manifest, else its first.
func pickWasm(ms []descriptor) descriptor {
	for _, d := range ms {
		if d.Platform != nil && (d.Platform.Architecture == "wasm" || d.Platform.OS == "wasip1" || d.Platform.OS == "wasi") {
			return d
		}
	}
	if len(ms) == 0 {
		return descriptor{}
	}
	return ms[0]
}

func readManifest(ctx context.Context, c contentapi.ContentClient, d descriptor) (*manifest, error) {
	if d.Digest == "" {
		return nil, errors.New("image index lists no manifest")
	}
	raw, err := readBlob(ctx, c, d, 4<<20)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	return &m, nil
}

func readBlob(ctx context.Context, c contentapi.ContentClient, d descriptor, limit int64) ([]byte, error) {
	if d.Size > limit {
		return nil, fmt.Errorf("blob %s is %d bytes, over the limit of %d", d.Digest, d.Size, limit)
	}
	stream, err := c.Read(ctx, &contentapi.ReadContentRequest{Digest: d.Digest})
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, d.Size)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", d.Digest, err)
		}
		out = append(out, resp.Data...)
		if int64(len(out)) > limit {
			return nil, fmt.Errorf("blob %s is over the limit of %d bytes", d.Digest, limit)
		}
	}
	return out, nil
}

package registry

import (
	"encoding/json"
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BuildWasmArtifact packs a module the CNCF way (TAG Runtime's wasm OCI
// artifact layout): the module itself, not a tar, as the one
// application/wasm layer, and a config of the wasm config media type that
// lists the layer digests instead of a root file system. containerd's CRI
// pulls it like any image and gives its containers an empty root; the wasm
// shim reads the module out of containerd's content store.
func BuildWasmArtifact(module string) (v1.Image, error) {
	if err := checkWasm(module); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(module)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", module, err)
	}
	layer := static.NewLayer(data, WasmLayerMediaType)
	digest, err := layer.Digest()
	if err != nil {
		return nil, err
	}
	config, err := json.Marshal(wasmConfig{Architecture: "wasm", OS: "wasip1", LayerDigests: []string{digest.String()}})
	if err != nil {
		return nil, err
	}
	configDesc, err := descriptorOf(static.NewLayer(config, WasmConfigMediaType))
	if err != nil {
		return nil, err
	}
	layerDesc, err := descriptorOf(layer)
	if err != nil {
		return nil, err
	}
	manifest, err := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: configDesc, Layers: []v1.Descriptor{layerDesc}})
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&wasmArtifact{config: config, manifest: manifest, layer: layer})
}

// wasmConfig is the application/vnd.wasm.config.v0+json document.
type wasmConfig struct {
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	LayerDigests []string `json:"layerDigests"`
}

func descriptorOf(l v1.Layer) (v1.Descriptor, error) {
	d, err := l.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := l.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := l.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: size}, nil
}

// wasmArtifact is the artifact as go-containerregistry's compressed image
// core: its config is not an OCI image config, so it is served raw.
type wasmArtifact struct {
	config, manifest []byte
	layer            v1.Layer
}

func (a *wasmArtifact) RawConfigFile() ([]byte, error)      { return a.config, nil }
func (a *wasmArtifact) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a *wasmArtifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func (a *wasmArtifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if d, _ := a.layer.Digest(); d == h {
		return a.layer, nil
	}
	return nil, fmt.Errorf("wasm artifact has no layer %s", h)
}

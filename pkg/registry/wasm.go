package registry

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// MaxModuleSize bounds the wasm modules read into memory.
const MaxModuleSize = 512 << 20

// ErrNotWasm says an image holds no wasm module.
var ErrNotWasm = errors.New("not a wasm image")

// FetchWasmModule reads the module of a wasm image from its registry: the
// application/wasm layer of a CNCF wasm artifact, or, in a "compat" image
// (`strata image build --wasm`), the file its entrypoint names. It returns
// the module and the image config (env, entrypoint).
func FetchWasmModule(ctx context.Context, ref string, opts ...remote.Option) ([]byte, *v1.ConfigFile, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	img, err := remote.Image(r, append([]remote.Option{remote.WithContext(ctx)}, opts...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch image %s: %w", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, nil, fmt.Errorf("image %s config: %w", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, nil, fmt.Errorf("image %s layers: %w", ref, err)
	}
	for _, l := range layers {
		if lt, _ := l.MediaType(); string(lt) == WasmLayerMediaType {
			rc, err := l.Compressed()
			if err != nil {
				return nil, nil, fmt.Errorf("image %s wasm layer: %w", ref, err)
			}
			defer rc.Close()
			b, err := readLimited(rc, "wasm layer of "+ref)
			return b, cf, err
		}
	}
	if len(cf.Config.Entrypoint) == 0 || !strings.HasSuffix(cf.Config.Entrypoint[0], ".wasm") {
		return nil, nil, fmt.Errorf("image %s: %w: no application/wasm layer and the entrypoint %q is not a .wasm file (build it with `strata image build --wasm MODULE`)", ref, ErrNotWasm, cf.Config.Entrypoint)
	}
	want := strings.TrimPrefix(path.Clean("/"+cf.Config.Entrypoint[0]), "/")
	// The top layer wins, as in the unpacked file system.
	for i := len(layers) - 1; i >= 0; i-- {
		b, found, err := findInLayer(layers[i], want)
		if err != nil {
			return nil, nil, fmt.Errorf("image %s: %w", ref, err)
		}
		if found {
			return b, cf, nil
		}
	}
	return nil, nil, fmt.Errorf("image %s: %w: its entrypoint %s is in none of its layers", ref, ErrNotWasm, cf.Config.Entrypoint[0])
}

func findInLayer(l v1.Layer, want string) ([]byte, bool, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, false, fmt.Errorf("read layer: %w", err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("read layer: %w", err)
		}
		if strings.TrimPrefix(path.Clean("/"+h.Name), "/") != want || h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := readLimited(tr, want)
		return b, true, err
	}
}

func readLimited(r io.Reader, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxModuleSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if len(b) > MaxModuleSize {
		return nil, fmt.Errorf("%s is larger than %d MiB", what, MaxModuleSize>>20)
	}
	return b, nil
}

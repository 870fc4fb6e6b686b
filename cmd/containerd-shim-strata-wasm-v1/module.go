package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// maxModuleSize bounds what the shim reads into memory.
const maxModuleSize = 512 << 20

// readModule reads the module the process args name from the image root.
// os.Root keeps symlinks in the image from reaching outside it.
func readModule(root, name string) ([]byte, error) {
	if root == "" {
		return nil, fmt.Errorf("no root file system to read module %s from", name)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("open image root: %w", err)
	}
	defer r.Close()
	rel := strings.TrimLeft(name, "/")
	f, err := r.Open(rel)
	if err != nil {
		return nil, fmt.Errorf("wasm module %s not found in the image (the entrypoint must name the .wasm file): %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxModuleSize+1))
	if err != nil {
		return nil, fmt.Errorf("read wasm module %s: %w", name, err)
	}
	if len(b) > maxModuleSize {
		return nil, fmt.Errorf("wasm module %s is larger than %d MiB", name, maxModuleSize>>20)
	}
	return b, nil
}

// module finds the container's module: the application/wasm layer when
// its image is a CNCF wasm artifact, else the file its first argument
// names in the image root.
func (s *service) module(ctx context.Context, spec *specs.Spec, root string) ([]byte, error) {
	if image := spec.Annotations[annImageName]; image != "" && s.store != nil {
		b, ok, err := s.store.artifactModule(ctx, image)
		if err != nil {
			return nil, err
		}
		if ok {
			return b, nil
		}
	}
	return readModule(root, spec.Process.Args[0])
}

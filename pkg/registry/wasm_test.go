package registry_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-dev/strata/pkg/registry"
	"github.com/strata-dev/strata/pkg/registry/registrytest"
)

func TestFetchWasmModule(t *testing.T) {
	addr := registrytest.Start(t)
	dir := t.TempDir()
	module := []byte("\x00asm\x01\x00\x00\x00fake-module")
	mod := filepath.Join(dir, "app.wasm")
	if err := os.WriteFile(mod, module, 0o644); err != nil {
		t.Fatal(err)
	}
	exe := writeExec(t, dir, "app", "#!/bin/sh\n")
	compat, err := registry.Build(registry.ImageSpec{Wasm: mod, HTTPPort: 8080})
	if err != nil {
		t.Fatal(err)
	}
	artifact, err := registry.BuildWasmArtifact(mod)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := registry.Build(registry.ImageSpec{Binary: exe})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		img     v1.Image
		wantErr error
	}{
		{"compat", compat, nil},
		{"artifact", artifact, nil},
		{"container", plain, registry.ErrNotWasm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref, err := registry.Push(tt.img, addr+"/fetch/"+filepath.Base(t.Name())+":v1")
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := registry.FetchWasmModule(context.Background(), ref)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && !bytes.Equal(got, module) {
				t.Fatalf("module %q, want %q", got, module)
			}
		})
	}
	if _, _, err := registry.FetchWasmModule(context.Background(), addr+"/fetch/missing:v1"); err == nil {
		t.Fatal("fetching a missing image succeeded")
	}
}

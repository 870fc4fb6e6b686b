package registry

import (
	"archive/tar"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// A dynamically linked binary of this machine (the test's own `true`)
// becomes a runnable image with --with-libs: its interpreter and libc are
// in the layer; without the flag it is refused.
func TestWithLibs(t *testing.T) {
	bin, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	libs, err := sharedLibs(bin)
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) == 0 {
		t.Fatalf("%s is static on this machine; the test needs a dynamic binary", bin)
	}
	if _, err := Build(ImageSpec{Binary: bin}); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Fatalf("a dynamic binary without --with-libs: %v", err)
	}
	if _, err := Build(ImageSpec{Dir: t.TempDir(), WithLibs: true, Entrypoint: []string{"/x"}}); err == nil || !strings.Contains(err.Error(), "--with-libs goes with --binary") {
		t.Fatalf("--with-libs with --dir: %v", err)
	}
	img, err := Build(ImageSpec{Binary: bin, WithLibs: true})
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %v %v", layers, err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, "/"+h.Name)
	}
	for _, want := range append([]string{"/true"}, libs...) {
		if !slices.Contains(names, want) {
			t.Errorf("layer lacks %s: %v", want, names)
		}
	}
	hasLibc := false
	for _, l := range libs {
		hasLibc = hasLibc || strings.Contains(l, "libc.so")
	}
	if !hasLibc || !strings.Contains(libs[0], "ld-linux") {
		t.Errorf("want the interpreter first and libc among %v", libs)
	}
}

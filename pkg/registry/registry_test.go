package registry_test

import (
	"github.com/strata-dev/strata/pkg/registry"
	"github.com/strata-dev/strata/pkg/registry/registrytest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func writeExec(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateBadInput(t *testing.T) {
	dir := t.TempDir()
	exe := writeExec(t, dir, "app", "#!/bin/sh\n")
	notExec := filepath.Join(dir, "data")
	os.WriteFile(notExec, []byte("x"), 0o644)
	// A real dynamically linked program of this machine.
	dynamic, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		spec registry.ImageSpec
		want string
	}{
		{"nothing", registry.ImageSpec{}, "exactly one of --binary FILE, --dir DIR or --wasm MODULE"},
		{"binary and wasm", registry.ImageSpec{Binary: exe, Wasm: notExec}, "exactly one of"},
		{"wasm not a module", registry.ImageSpec{Wasm: notExec}, "is not a WebAssembly module"},
		{"http port without wasm", registry.ImageSpec{Binary: exe, HTTPPort: 8080}, "needs --wasm"},
		{"both", registry.ImageSpec{Binary: exe, Dir: dir}, "exactly one of"},
		{"missing binary", registry.ImageSpec{Binary: filepath.Join(dir, "nope")}, "no such file"},
		{"binary not executable", registry.ImageSpec{Binary: notExec}, "is not an executable file"},
		{"dynamically linked", registry.ImageSpec{Binary: dynamic}, "dynamically linked"},
		{"dir without entrypoint", registry.ImageSpec{Dir: dir}, "needs --entrypoint"},
		{"dir is a file", registry.ImageSpec{Dir: exe, Entrypoint: []string{"/x"}}, "is not a directory"},
		{"bad env", registry.ImageSpec{Binary: exe, Env: []string{"NOVALUE"}}, "use NAME=VALUE"},
		{"bad port", registry.ImageSpec{Binary: exe, Ports: []string{"http"}}, "--port \"http\""},
		{"port out of range", registry.ImageSpec{Binary: exe, Ports: []string{"70000"}}, "from 1 to 65535"},
		{"bad protocol", registry.ImageSpec{Binary: exe, Ports: []string{"53/icmp"}}, "protocol must be"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestBuildWasm(t *testing.T) {
	mod := filepath.Join(t.TempDir(), "app.wasm")
	os.WriteFile(mod, []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	img, err := registry.Build(registry.ImageSpec{Wasm: mod, HTTPPort: 8080})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Entrypoint; len(got) != 1 || got[0] != "/app.wasm" {
		t.Errorf("entrypoint %q, want [/app.wasm]", got)
	}
	if !slices.Contains(cf.Config.Env, "STRATA_WASM_HTTP_PORT=8080") {
		t.Errorf("env %q lacks STRATA_WASM_HTTP_PORT=8080", cf.Config.Env)
	}
	if _, ok := cf.Config.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("exposed ports %v lack 8080/tcp", cf.Config.ExposedPorts)
	}
	if cf.Config.Labels["module.wasm.image/variant"] != "compat" {
		t.Errorf("labels %v lack module.wasm.image/variant=compat", cf.Config.Labels)
	}
}

// TestBuildPushPull pushes to the embedded registry on loopback and reads
// the image back as containerd would.
func TestBuildPushPull(t *testing.T) {
	addr := registrytest.Start(t)

	dir := t.TempDir()
	exe := writeExec(t, dir, "app", "#!/bin/sh\necho hi\n")
	img, err := registry.Build(registry.ImageSpec{Binary: exe, Env: []string{"A=b"}, Ports: []string{"8080"}, User: "65532"})
	if err != nil {
		t.Fatal(err)
	}
	tarFile := filepath.Join(dir, "app.tar")
	ref := addr + "/team/app:v1"
	if err := registry.Save(img, ref, tarFile); err != nil {
		t.Fatal(err)
	}
	loaded, err := registry.Load(tarFile)
	if err != nil {
		t.Fatal(err)
	}
	digestRef, err := registry.Push(loaded, ref)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if !strings.HasSuffix(digestRef, "@"+want.String()) {
		t.Fatalf("pushed %s, want digest %s (save/load must not change the image)", digestRef, want)
	}

	r, _ := name.ParseReference(ref)
	pulled, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := pulled.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Entrypoint; len(got) != 1 || got[0] != "/app" {
		t.Errorf("entrypoint %q, want [/app]", got)
	}
	if _, ok := cf.Config.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("exposed ports %v lack 8080/tcp", cf.Config.ExposedPorts)
	}
	if cf.Config.User != "65532" || cf.OS != "linux" {
		t.Errorf("user %q os %q", cf.Config.User, cf.OS)
	}
	layers, _ := pulled.Layers()
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
}

func TestBadImageName(t *testing.T) {
	dir := t.TempDir()
	img, err := registry.Build(registry.ImageSpec{Binary: writeExec(t, dir, "app", "x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.Push(img, "Bad Name!"); err == nil || !strings.Contains(err.Error(), "use e.g. localhost:5000/app:v1") {
		t.Fatalf("got %v", err)
	}
	if _, err := registry.Load(filepath.Join(dir, "missing.tar")); err == nil || !strings.Contains(err.Error(), "strata image build -o") {
		t.Fatalf("got %v", err)
	}
}

func TestDirImageIsReproducible(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	writeExec(t, filepath.Join(dir, "bin"), "srv", "x")
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>hi</h1>"), 0o644)
	spec := registry.ImageSpec{Dir: dir, Entrypoint: []string{"/bin/srv"}}
	a, err := registry.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(dir, "index.html"), later, later)
	b, _ := registry.Build(spec)
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("same content, different digests: %s %s", da, db)
	}
}

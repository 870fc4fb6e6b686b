package registry

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ImageSpec describes an image built from local files, without Docker.
type ImageSpec struct {
	// Binary is a static executable placed at /<basename> (or Entrypoint[0]).
	Binary string
	// WithLibs lets Binary be dynamically linked: its ELF interpreter and
	// shared libraries are copied from this machine into the layer, at the
	// paths the loader looks for them (a base layer of just those files).
	WithLibs bool
	// Dir is a directory whose contents become the image root.
	Dir string
	// Wasm is a WASI module placed at /<basename> (or Entrypoint[0]) and
	// run by the wasm runtime class (containerd-shim-strata-wasm-v1).
	Wasm string
	// HTTPPort makes a Wasm image an HTTP handler served on this port: the
	// shim reads it from the STRATA_WASM_HTTP_PORT environment variable.
	HTTPPort   int
	Entrypoint []string
	Cmd        []string
	Env        []string
	// Ports are exposed ports such as "8080/tcp".
	Ports   []string
	WorkDir string
	User    string
	Labels  map[string]string
}

// Validate checks the spec before anything is read, with messages that say
// how to fix it.
func (s *ImageSpec) Validate() error {
	n := 0
	for _, c := range []string{s.Binary, s.Dir, s.Wasm} {
		if c != "" {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("give exactly one of --binary FILE, --dir DIR or --wasm MODULE as the image content")
	}
	if s.WithLibs && s.Binary == "" {
		return fmt.Errorf("--with-libs goes with --binary: it adds a dynamically linked binary's shared libraries")
	}
	if s.HTTPPort != 0 && (s.Wasm == "" || s.HTTPPort < 1 || s.HTTPPort > 65535) {
		return fmt.Errorf("--http-port %d: needs --wasm and a port from 1 to 65535", s.HTTPPort)
	}
	if s.Wasm != "" {
		if err := checkWasm(s.Wasm); err != nil {
			return err
		}
	}
	if s.Binary != "" {
		st, err := os.Stat(s.Binary)
		if err != nil {
			return fmt.Errorf("binary %s: %w", s.Binary, err)
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("binary %s is not an executable file: build it with CGO_ENABLED=0 go build, or use --dir for a directory", s.Binary)
		}
		if !s.WithLibs {
			if err := checkStaticELF(s.Binary); err != nil {
				return err
			}
		}
	}
	if s.Dir != "" {
		st, err := os.Stat(s.Dir)
		if err != nil {
			return fmt.Errorf("directory %s: %w", s.Dir, err)
		}
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory: use --binary for a single file", s.Dir)
		}
		if len(s.Entrypoint) == 0 && len(s.Cmd) == 0 {
			return fmt.Errorf("an image from --dir needs --entrypoint: name the program to run, e.g. --entrypoint /app/server")
		}
	}
	for _, e := range s.Env {
		if !strings.Contains(e, "=") {
			return fmt.Errorf("--env %q: use NAME=VALUE", e)
		}
	}
	for _, p := range s.Ports {
		if _, err := normalizePort(p); err != nil {
			return err
		}
	}
	return nil
}

// checkStaticELF refuses dynamically linked binaries, which would fail in
// an image without a base layer with a confusing "no such file" at run time.
func checkStaticELF(file string) error {
	f, err := elf.Open(file)
	if err != nil {
		// Not ELF (a script, a wasm module): the caller knows best.
		return nil
	}
	defer f.Close()
	interp, err := interpreter(f)
	if err != nil {
		return fmt.Errorf("binary %s: %w", file, err)
	}
	if interp != "" {
		return fmt.Errorf("binary %s is dynamically linked and the image has no base layer: rebuild it static (CGO_ENABLED=0 go build), or pass --with-libs to copy its loader and libraries in", file)
	}
	return nil
}

// checkWasm catches a wrong file before it becomes an image that fails at
// container start.
func checkWasm(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("wasm module %s: %w", file, err)
	}
	defer f.Close()
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, []byte("\x00asm")) {
		return fmt.Errorf("%s is not a WebAssembly module (no \\0asm header): build it with GOOS=wasip1 GOARCH=wasm go build", file)
	}
	return nil
}

func normalizePort(p string) (string, error) {
	port, proto, found := strings.Cut(p, "/")
	if !found {
		proto = "tcp"
	}
	var n int
	if _, err := fmt.Sscanf(port, "%d", &n); err != nil || n < 1 || n > 65535 || fmt.Sprint(n) != port {
		return "", fmt.Errorf("--port %q: use a number from 1 to 65535, optionally with /tcp or /udp", p)
	}
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return "", fmt.Errorf("--port %q: protocol must be tcp, udp or sctp", p)
	}
	return port + "/" + proto, nil
}

// Build assembles the image in memory.
func Build(s ImageSpec) (v1.Image, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	var layerTar []byte
	var err error
	entry := s.Entrypoint
	if file := s.Binary + s.Wasm; file != "" {
		target := "/" + filepath.Base(file)
		if len(entry) > 0 {
			target = entry[0]
		} else {
			entry = []string{target}
		}
		files := map[string]string{target: file}
		if s.WithLibs {
			libs, err := sharedLibs(file)
			if err != nil {
				return nil, err
			}
			for _, l := range libs {
				files[l] = l
			}
		}
		layerTar, err = tarFiles(files)
	} else {
		layerTar, err = tarDir(s.Dir)
	}
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint = entry
	cf.Config.Cmd = s.Cmd
	cf.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, s.Env...)
	cf.Config.WorkingDir = s.WorkDir
	cf.Config.User = s.User
	cf.Config.Labels = s.Labels
	if s.Wasm != "" {
		// The platform stays linux/<arch>: a CRI that checks platforms pulls only images
		// whose config matches the node, and the shim, not the platform,
		// decides how to run it. The label is the ecosystem's marker for
		// such "compat" wasm images (crun, WasmEdge, runwasi read it).
		if cf.Config.Labels == nil {
			cf.Config.Labels = map[string]string{}
		}
		cf.Config.Labels["module.wasm.image/variant"] = "compat"
		if s.HTTPPort != 0 {
			cf.Config.Env = append(cf.Config.Env, fmt.Sprintf("STRATA_WASM_HTTP_PORT=%d", s.HTTPPort))
			s.Ports = append(s.Ports, fmt.Sprint(s.HTTPPort))
		}
	}
	if len(s.Ports) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range s.Ports {
			np, _ := normalizePort(p)
			cf.Config.ExposedPorts[np] = struct{}{}
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	return img, nil
}

// Save writes the image as a tarball that `strata image push` and
// `docker load` both read.
func Save(img v1.Image, ref, file string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image name %q: %w (use e.g. localhost:5000/app:v1)", ref, err)
	}
	if err := tarball.WriteToFile(file, tag, img); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

// Load reads an image tarball written by Save (or `docker save`).
func Load(file string) (v1.Image, error) {
	img, err := tarball.ImageFromPath(file, nil)
	if err != nil {
		return nil, fmt.Errorf("read image %s: %w (expected a tarball from `strata image build -o`)", file, err)
	}
	return img, nil
}

// Push uploads the image to ref and returns its digest reference.
func Push(img v1.Image, ref string, opts ...remote.Option) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("image name %q: %w (use e.g. localhost:5000/app:v1)", ref, err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("digest of %s: %w", ref, err)
	}
	return r.Context().Digest(d.String()).String(), nil
}

// tarFiles packs files (image path -> source, symlinks followed) with
// their parent directories, in a fixed order so the same input gives the
// same digest.
func tarFiles(files map[string]string) ([]byte, error) {
	targets := make([]string, 0, len(files))
	for t := range files {
		targets = append(targets, t)
	}
	sort.Strings(targets)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, t := range targets {
		data, err := os.ReadFile(files[t])
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", files[t], err)
		}
		name := strings.TrimPrefix(path.Clean(t), "/")
		if dir := path.Dir(name); dir != "." {
			for _, d := range parents(dir) {
				if dirs[d] {
					continue
				}
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
					return nil, err
				}
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func parents(dir string) []string {
	var out []string
	for d := dir; d != "." && d != "/"; d = path.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}

// tarDir packs a directory with deterministic order and times, so the same
// input gives the same digest.
func tarDir(root string) ([]byte, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", root, err)
	}
	sort.Strings(files)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range files {
		st, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(root, p)
		link := ""
		if st.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return nil, err
			}
		}
		h, err := tar.FileInfoHeader(st, link)
		if err != nil {
			return nil, err
		}
		h.Name = filepath.ToSlash(rel)
		if st.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		h.ModTime, h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}, time.Time{}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if st.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return nil, err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Media types of the CNCF TAG Runtime wasm OCI artifact layout.
const (
	WasmConfigMediaType = "application/vnd.wasm.config.v0+json"
	WasmLayerMediaType  = "application/wasm"
)

package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// FuzzFetchWasmModule: whatever image config and layer a registry serves
// for a wasm image (a manifest with the right digests around fuzzed
// content), the module is read within MaxModuleSize or refused with an
// error that names the image; never a panic or a hang.
func FuzzFetchWasmModule(f *testing.F) {
	module := []byte("\x00asm\x01\x00\x00\x00")
	f.Add("application/wasm", []byte(`{"architecture":"wasm","os":"wasip1","config":{}}`), module)
	f.Add("application/vnd.oci.image.layer.v1.tar", []byte(`{"architecture":"wasm","os":"wasip1","config":{"Entrypoint":["/app.wasm"]}}`), tarOf(f, "app.wasm", module))
	f.Add("application/vnd.oci.image.layer.v1.tar", []byte(`{"config":{"Entrypoint":["../../app.wasm"]}}`), tarOf(f, "./app.wasm", module))
	f.Add("application/vnd.oci.image.layer.v1.tar+gzip", []byte(`{"config":{"Entrypoint":["app.wasm"]}}`), []byte("not gzip"))
	f.Add("application/wasm", []byte(`not json`), module)
	// One registry for the whole run, serving the current input: a server
	// per input would leave thousands of sockets behind. Inputs run one
	// at a time in each worker process.
	var mu sync.Mutex
	var manifest string
	blobs := map[string][]byte{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch p := r.URL.Path; {
		case p == "/v2/":
		case strings.HasPrefix(p, "/v2/app/manifests/"):
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			fmt.Fprint(w, manifest)
		case strings.HasPrefix(p, "/v2/app/blobs/"):
			b, ok := blobs[strings.TrimPrefix(p, "/v2/app/blobs/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			_, _ = w.Write(b)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/app:v1"
	// No retries: a refusal must come back at once, not after a backoff.
	noRetry := remote.WithRetryPredicate(func(error) bool { return false })
	f.Fuzz(func(t *testing.T, layerType string, config, layer []byte) {
		if strings.ContainsAny(layerType, "\"\\\x00\n") {
			return // the manifest is JSON we write by hand
		}
		mu.Lock()
		blobs = map[string][]byte{digestOf(config): config, digestOf(layer): layer}
		manifest = fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
			`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
			`"layers":[{"mediaType":%q,"digest":%q,"size":%d}]}`, digestOf(config), len(config), layerType, digestOf(layer), len(layer))
		mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		mod, cf, err := FetchWasmModule(ctx, ref, noRetry, remote.WithTransport(srv.Client().Transport))
		if err != nil {
			if !strings.Contains(err.Error(), "app") {
				t.Fatalf("error does not name the image: %v", err)
			}
			return
		}
		if cf == nil || len(mod) > MaxModuleSize {
			t.Fatalf("module of %d bytes, config %v", len(mod), cf)
		}
	})
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func tarOf(f *testing.F, name string, content []byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		f.Fatal(err)
	}
	if _, err := tw.Write(content); err != nil {
		f.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}

package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/strata-dev/strata/pkg/wasm"
)

// The generated module must be valid and answer through the same handler
// the shim serves HTTP pods with.
func TestModuleServesItsResponse(t *testing.T) {
	for _, size := range []int{0, 5, 1024, 70000} {
		body := strings.Repeat("x", size)
		resp := "Content-Type: text/plain\r\n\r\n" + body
		e, err := wasm.NewEngine(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		m, err := e.Compile(ctx, Module([]byte(resp)), wasm.Options{MemoryLimit: 16 << 20})
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		srv := httptest.NewServer(wasm.NewHandler(m, wasm.HTTPConfig{Timeout: 5 * time.Second}))
		r, err := http.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r.Body)
		r.Body.Close()
		srv.Close()
		m.Close(ctx)
		e.Close(ctx)
		if r.StatusCode != 200 || string(got) != body || r.Header.Get("Content-Type") != "text/plain" {
			t.Errorf("size %d: %d %q (%d bytes)", size, r.StatusCode, r.Header.Get("Content-Type"), len(got))
		}
	}
}

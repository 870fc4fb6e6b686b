package wasm

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzCGIResponse: whatever a module prints, the response is either
// refused with an error or written with a valid status and no header
// that could split the response.
func FuzzCGIResponse(f *testing.F) {
	for _, seed := range []string{
		"Content-Type: text/plain\n\nhello",
		"Status: 404 Not Found\r\n\r\n",
		"Location: /elsewhere\n\n",
		"Status: abc\n\n",
		"no headers",
		"\n\nbody only",
		"X-A: 1\nX-A: 2\nContent-Length: 3\n\nabc",
		"Status: 99\n\n",
		" folded: header\n\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		rec := httptest.NewRecorder()
		if err := writeCGIResponse(rec, out); err != nil {
			if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
				t.Fatalf("an error (%v) after writing a response", err)
			}
			return
		}
		if rec.Code < 100 || rec.Code > 999 {
			t.Fatalf("status %d", rec.Code)
		}
		for k, vs := range rec.Header() {
			for _, v := range append(vs, k) {
				if strings.ContainsAny(v, "\r\n") {
					t.Fatalf("header %q: %q splits the response", k, v)
				}
			}
		}
	})
}

// FuzzCGIEnv: any request a client can send gives environment entries
// NAME=VALUE with no NUL or newline in the name, as RFC 3875 wants, and
// never HTTP_PROXY (httpoxy).
func FuzzCGIEnv(f *testing.F) {
	f.Add("GET / HTTP/1.1\r\nHost: fn.example\r\nProxy: http://evil\r\nX-Y: z\r\n\r\n")
	f.Add("POST /a/b?c=d HTTP/1.1\r\nHost: [::1]:8080\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n")
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewBufferString(raw)))
		if err != nil {
			return
		}
		r.RemoteAddr = "10.0.0.1:1234"
		for _, e := range cgiEnv(r, 0, 8080) {
			name, _, ok := strings.Cut(e, "=")
			if !ok || name == "" || strings.ContainsAny(name, "\x00\r\n") {
				t.Fatalf("entry %q", e)
			}
			if name == "HTTP_PROXY" {
				t.Fatalf("HTTP_PROXY passed from the request: %q", e)
			}
		}
	})
}

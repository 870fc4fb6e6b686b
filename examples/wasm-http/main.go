// wasm-http is the demo WAGI (CGI-style) HTTP handler module (build with
// GOOS=wasip1 GOARCH=wasm). The shim runs one fresh instance per request:
// the request arrives in CGI environment variables and on stdin, and the
// response (headers, blank line, body) goes to stdout. It avoids net/http
// on purpose: a smaller module instantiates faster, and every request pays
// for instantiation.
//
//	/            greeting
//	/echo        echoes method, query and body
//	/healthz     "ok" (readiness and liveness probes)
//	/size?n=N    N bytes of body (load tests)
//	/alloc?mib=N allocates N MiB (memory limit)
//	/loop        spins forever (request deadline)
//	/missing     404
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

func main() {
	w := bufio.NewWriterSize(os.Stdout, 32<<10)
	defer w.Flush()
	path := os.Getenv("PATH_INFO")
	query := parseQuery(os.Getenv("QUERY_STRING"))
	switch path {
	case "/", "":
		greeting := os.Getenv("GREETING")
		if greeting == "" {
			greeting = "hello from wasm"
		}
		respond(w, 200, "text/plain", fmt.Sprintf("%s: %s %s\n", greeting, os.Getenv("REQUEST_METHOD"), path))
	case "/healthz":
		respond(w, 200, "text/plain", "ok\n")
	case "/echo":
		body, _ := io.ReadAll(os.Stdin)
		respond(w, 200, "text/plain", fmt.Sprintf("method=%s query=%s agent=%s body=%s\n",
			os.Getenv("REQUEST_METHOD"), os.Getenv("QUERY_STRING"), os.Getenv("HTTP_USER_AGENT"), body))
	case "/size":
		n, _ := strconv.Atoi(query["n"])
		respond(w, 200, "application/octet-stream", strings.Repeat("x", n))
	case "/alloc":
		mib, _ := strconv.Atoi(query["mib"])
		var keep [][]byte
		for i := 0; i < mib; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		respond(w, 200, "text/plain", fmt.Sprintf("allocated %d MiB\n", len(keep)))
	case "/loop":
		for n := 0; ; n++ {
		}
	default:
		respond(w, 404, "text/plain", "not found: "+path+"\n")
	}
}

func respond(w io.Writer, code int, ctype, body string) {
	fmt.Fprintf(w, "Status: %d\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", code, ctype, len(body), body)
}

func parseQuery(q string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(q, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if k != "" {
			out[k] = v
		}
	}
	return out
}

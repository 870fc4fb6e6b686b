package wasm

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"
)

// HTTPConfig configures a WAGI-style handler.
type HTTPConfig struct {
	// Args and Env are the container's; CGI variables are added to Env.
	Args   []string
	Env    []string
	Mounts []Mount
	// Timeout bounds each request's instance (default 10 s).
	Timeout time.Duration
	// MaxConcurrent bounds the instances alive at once, and so the memory
	// (MaxConcurrent x memory limit); requests beyond it wait until their
	// deadline, then get 503. Default 32.
	MaxConcurrent int
	// MaxBody bounds the request body (default 16 MiB) and the response.
	MaxBody int64
	// Stderr receives the modules' stderr (the container log).
	Stderr io.Writer
	// Port is the server port, for SERVER_PORT.
	Port int
}

// Handler serves HTTP by running a fresh instance of m per request, CGI
// style: the request in environment variables and on stdin, the response
// (CGI headers, blank line, body) on stdout.
type Handler struct {
	m   *Module
	cfg HTTPConfig
	sem chan struct{}
}

// NewHandler returns the handler for m.
func NewHandler(m *Module, cfg HTTPConfig) *Handler {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 32
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 16 << 20
	}
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	return &Handler{m: m, cfg: cfg, sem: make(chan struct{}, cfg.MaxConcurrent)}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	select {
	case h.sem <- struct{}{}:
		defer func() { <-h.sem }()
	case <-ctx.Done():
		http.Error(w, "wasm handler busy: all instances in use until the request deadline", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.cfg.MaxBody+1))
	if err != nil {
		http.Error(w, "read request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if int64(len(body)) > h.cfg.MaxBody {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	var stdout limitedBuffer
	stdout.max = h.cfg.MaxBody
	// The deadline is enforced here (not with RunConfig.Timeout) so that
	// waiting for a slot counts against it too.
	res := h.m.Run(ctx, RunConfig{
		Args:   h.cfg.Args,
		Env:    append(append([]string(nil), h.cfg.Env...), cgiEnv(r, len(body), h.cfg.Port)...),
		Stdin:  bytes.NewReader(body),
		Stdout: &stdout,
		Stderr: h.cfg.Stderr,
		Mounts: h.cfg.Mounts,
	})
	if res.Reason == ReasonKilled && ctx.Err() == context.DeadlineExceeded && r.Context().Err() == nil {
		res = Result{ExitCode: ExitCodeDeadline, Reason: ReasonDeadlineExceeded,
			Message: fmt.Sprintf("wasm handler exceeded its %s request deadline", h.cfg.Timeout)}
	}
	switch res.Reason {
	case ReasonCompleted:
	case ReasonDeadlineExceeded:
		h.fail(w, r, http.StatusServiceUnavailable, res)
		return
	default:
		h.fail(w, r, http.StatusInternalServerError, res)
		return
	}
	if stdout.overflow {
		h.fail(w, r, http.StatusInternalServerError, Result{Reason: ReasonError, Message: "wasm handler response too large"})
		return
	}
	if err := writeCGIResponse(w, stdout.Bytes()); err != nil {
		h.fail(w, r, http.StatusInternalServerError, Result{Reason: ReasonError, Message: "wasm handler wrote an invalid CGI response: " + err.Error()})
	}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, code int, res Result) {
	msg := res.Message
	if msg == "" {
		msg = fmt.Sprintf("wasm handler exited with code %d", res.ExitCode)
	}
	klog.V(2).InfoS("Wasm request failed", "method", r.Method, "path", r.URL.Path, "reason", res.Reason, "message", msg)
	fmt.Fprintf(h.cfg.Stderr, "strata-wasm: %s %s: %s: %s\n", r.Method, r.URL.Path, res.Reason, msg)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Strata-Wasm-Reason", string(res.Reason))
	w.WriteHeader(code)
	fmt.Fprintf(w, "%s: %s\n", res.Reason, msg)
}

// cgiEnv is RFC 3875's meta-variables for r.
func cgiEnv(r *http.Request, bodyLen, port int) []string {
	host, rport, _ := net.SplitHostPort(r.RemoteAddr)
	env := []string{
		"GATEWAY_INTERFACE=CGI/1.1",
		"SERVER_PROTOCOL=" + r.Proto,
		"SERVER_SOFTWARE=strata-wasm",
		"SERVER_NAME=" + hostOnly(r.Host),
		"SERVER_PORT=" + strconv.Itoa(port),
		"REQUEST_METHOD=" + r.Method,
		"REQUEST_URI=" + r.URL.RequestURI(),
		"SCRIPT_NAME=",
		"PATH_INFO=" + r.URL.Path,
		"QUERY_STRING=" + r.URL.RawQuery,
		"REMOTE_ADDR=" + host,
		"REMOTE_PORT=" + rport,
		"CONTENT_LENGTH=" + strconv.Itoa(bodyLen),
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		env = append(env, "CONTENT_TYPE="+ct)
	}
	if r.Host != "" {
		env = append(env, "HTTP_HOST="+r.Host)
	}
	for k, vs := range r.Header {
		k = strings.ToUpper(strings.ReplaceAll(k, "-", "_"))
		// Proxy is httpoxy (CVE-2016-5385); the others are set above.
		if k == "PROXY" || k == "CONTENT_TYPE" || k == "CONTENT_LENGTH" || k == "HOST" {
			continue
		}
		env = append(env, "HTTP_"+k+"="+strings.Join(vs, ", "))
	}
	return env
}

func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

// writeCGIResponse parses CGI output (headers, blank line, body) and writes
// it. A "Status: 404 Not Found" header sets the status; without one it is
// 200, or 302 with a Location header.
func writeCGIResponse(w http.ResponseWriter, out []byte) error {
	br := bufio.NewReader(bytes.NewReader(out))
	hdr, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil && !(err == io.EOF && len(hdr) > 0) {
		return fmt.Errorf("read headers: %w", err)
	}
	if len(hdr) == 0 {
		return fmt.Errorf("no headers before the blank line")
	}
	code := http.StatusOK
	if s := hdr.Get("Status"); s != "" {
		f, _, _ := strings.Cut(s, " ")
		c, err := strconv.Atoi(f)
		if err != nil || c < 100 || c > 999 {
			return fmt.Errorf("bad Status header %q", s)
		}
		code = c
		hdr.Del("Status")
	} else if hdr.Get("Location") != "" {
		code = http.StatusFound
	}
	for k, vs := range hdr {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	body, _ := io.ReadAll(br)
	if w.Header().Get("Content-Length") == "" {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
	return nil
}

// limitedBuffer keeps at most max bytes and remembers overflowing.
type limitedBuffer struct {
	bytes.Buffer
	max      int64
	overflow bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if int64(b.Len()+len(p)) > b.max {
		b.overflow = true
		return 0, fmt.Errorf("response larger than %d bytes", b.max)
	}
	return b.Buffer.Write(p)
}

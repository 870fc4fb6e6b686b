package wasm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Hand-assembled modules: small enough to read, and they do one thing.
var (
	header = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	// type () -> (); func 0; memory min 1; exports _start and memory.
	prelude = []byte{
		0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
		0x03, 0x02, 0x01, 0x00,
		0x05, 0x03, 0x01, 0x00, 0x01,
		0x07, 0x13, 0x02, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00,
		0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00,
	}
)

// module returns a module whose _start has the given body (locals, code).
func module(body ...byte) []byte {
	out := append(append([]byte{}, header...), prelude...)
	fn := append([]byte{byte(len(body))}, body...)
	sec := append([]byte{0x01}, fn...)
	out = append(out, 0x0a, byte(len(sec)))
	return append(out, sec...)
}

var (
	modEmpty = module(0x00, 0x0b)                               // return
	modTrap  = module(0x00, 0x00, 0x0b)                         // unreachable
	modLoop  = module(0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b) // loop br 0
	// grow one page at a time until memory.grow fails, then trap.
	modGrow = module(0x00, 0x03, 0x40, 0x41, 0x01, 0x40, 0x00, 0x41, 0x7f, 0x47, 0x0d, 0x00, 0x0b, 0x00, 0x0b)
)

var goModules = struct {
	once        sync.Once
	hello, http []byte
	err         error
}{}

// goExamples builds the Go examples for wasip1 once per test binary.
func goExamples(t testing.TB) (hello, httpMod []byte) {
	t.Helper()
	goModules.once.Do(func() {
		dir, err := os.MkdirTemp("", "wasm-examples")
		if err != nil {
			goModules.err = err
			return
		}
		defer os.RemoveAll(dir)
		build := func(pkg string) []byte {
			out := filepath.Join(dir, filepath.Base(pkg)+".wasm")
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
			if b, err := cmd.CombinedOutput(); err != nil {
				goModules.err = errors.New(string(b))
				return nil
			}
			b, _ := os.ReadFile(out)
			return b
		}
		goModules.hello = build("github.com/strata-dev/strata/examples/wasm-hello")
		goModules.http = build("github.com/strata-dev/strata/examples/wasm-http")
	})
	if goModules.err != nil {
		t.Fatalf("build wasm examples: %v", goModules.err)
	}
	return goModules.hello, goModules.http
}

// cacheDir is shared by the package's tests so that each Go example is
// compiled once; TestMain removes it.
var cacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wasm-cache")
	if err != nil {
		panic(err)
	}
	cacheDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func newEngine(t testing.TB) *Engine {
	t.Helper()
	e, err := NewEngine(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

func TestCompileBadInput(t *testing.T) {
	e := newEngine(t)
	noStart := append(append([]byte{}, header...), 0x01, 0x04, 0x01, 0x60, 0x00, 0x00)
	for _, tc := range []struct {
		name, module string
		wasm         []byte
		limit        uint64
		want         string
		oom          bool
	}{
		{name: "empty", wasm: nil, want: "not a WebAssembly binary"},
		{name: "text", wasm: []byte("#!/bin/sh\necho hi\n"), want: "not a WebAssembly binary"},
		{name: "truncated", wasm: modTrap[:len(modTrap)-3], want: "invalid wasm module: compile"},
		{name: "no _start", wasm: noStart, want: "no exported _start"},
		{name: "min memory over limit", wasm: modEmpty, limit: 1024, want: "exceeded its memory limit", oom: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := e.Compile(context.Background(), tc.wasm, Options{MemoryLimit: tc.limit})
			if err == nil {
				m.Close(context.Background())
				t.Fatal("Compile succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if IsOOM(err) != tc.oom {
				t.Errorf("IsOOM = %v, want %v", IsOOM(err), tc.oom)
			}
		})
	}
}

func TestRun(t *testing.T) {
	hello, _ := goExamples(t)
	e := newEngine(t)
	vol := t.TempDir()
	os.WriteFile(filepath.Join(vol, "data.txt"), []byte("x"), 0o644)
	for _, tc := range []struct {
		name    string
		wasm    []byte
		args    []string
		env     []string
		limit   uint64
		timeout time.Duration
		mounts  []Mount
		want    Result
		stdout  string
		stderr  string
	}{
		{name: "empty module", wasm: modEmpty, want: Result{Reason: ReasonCompleted}},
		{name: "trap", wasm: modTrap, want: Result{ExitCode: ExitCodeTrap, Reason: ReasonTrap, Message: "wasm module trapped: wasm error: unreachable"}},
		{name: "grow past limit", wasm: modGrow, limit: 4 * PageSize, want: Result{ExitCode: ExitCodeOOM, Reason: ReasonOOMKilled,
			Message: "wasm module exceeded its memory limit: wanted 0 MiB of linear memory, limit 0 MiB"}},
		{name: "loop past deadline", wasm: modLoop, timeout: 200 * time.Millisecond, want: Result{ExitCode: ExitCodeDeadline, Reason: ReasonDeadlineExceeded,
			Message: "wasm module stopped: run deadline exceeded"}},
		{name: "go hello", wasm: hello, args: []string{"hello"}, env: []string{"GREETING=hi", "PWD=/data"},
			mounts: []Mount{{HostPath: vol, GuestPath: "/data", ReadOnly: true}},
			want:   Result{Reason: ReasonCompleted}, stdout: "greeting: hi\ncwd: /data\n"},
		{name: "go exit code", wasm: hello, args: []string{"hello", "exit", "3"}, want: Result{ExitCode: 3, Reason: ReasonError}, stderr: "exiting with 3"},
		{name: "go ls volume", wasm: hello, args: []string{"hello", "ls", "/data"}, mounts: []Mount{{HostPath: vol, GuestPath: "/data"}},
			want: Result{Reason: ReasonCompleted}, stdout: "ls: data.txt"},
		{name: "go no host fs", wasm: hello, args: []string{"hello", "ls", "/etc"}, want: Result{ExitCode: 1, Reason: ReasonError}, stderr: "ls:"},
		{name: "go read-only volume", wasm: hello, args: []string{"hello", "write", "/data/new", "x"}, mounts: []Mount{{HostPath: vol, GuestPath: "/data", ReadOnly: true}},
			want: Result{ExitCode: 1, Reason: ReasonError}, stderr: "write:"},
		{name: "go alloc past limit", wasm: hello, args: []string{"hello", "alloc", "200"}, limit: 64 << 20,
			want: Result{ExitCode: ExitCodeOOM, Reason: ReasonOOMKilled}},
		{name: "go alloc under limit", wasm: hello, args: []string{"hello", "alloc", "8"}, limit: 64 << 20,
			want: Result{Reason: ReasonCompleted}, stdout: "allocated 8 MiB"},
		{name: "go loop past deadline", wasm: hello, args: []string{"hello", "loop"}, timeout: 300 * time.Millisecond,
			want: Result{ExitCode: ExitCodeDeadline, Reason: ReasonDeadlineExceeded, Message: "wasm module stopped: run deadline exceeded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			m, err := e.Compile(ctx, tc.wasm, Options{MemoryLimit: tc.limit})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(ctx)
			var stdout, stderr bytes.Buffer
			got := m.Run(ctx, RunConfig{Args: tc.args, Env: tc.env, Stdout: &stdout, Stderr: &stderr, Mounts: tc.mounts, Timeout: tc.timeout})
			if tc.want.Message == "" && got.Reason == ReasonOOMKilled {
				got.Message = "" // sizes vary with the Go runtime
			}
			if got != tc.want {
				t.Errorf("Run = %+v, want %+v (stderr %q)", got, tc.want, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout %q, want it to contain %q", stdout.String(), tc.stdout)
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tc.stderr)
			}
		})
	}
}

func TestRunKilled(t *testing.T) {
	e := newEngine(t)
	ctx := context.Background()
	m, err := e.Compile(ctx, modLoop, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	rctx, cancel := context.WithCancelCause(ctx)
	time.AfterFunc(100*time.Millisecond, func() { cancel(&KilledError{Signal: 15}) })
	got := m.Run(rctx, RunConfig{})
	if want := (Result{ExitCode: 143, Reason: ReasonKilled, Message: "killed by signal 15"}); got != want {
		t.Errorf("Run = %+v, want %+v", got, want)
	}
}

func TestHandler(t *testing.T) {
	_, httpMod := goExamples(t)
	e := newEngine(t)
	ctx := context.Background()
	m, err := e.Compile(ctx, httpMod, Options{MemoryLimit: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	var logs bytes.Buffer
	var mu sync.Mutex
	// The deadline leaves room for /alloc to reach the memory limit on a
	// loaded machine (unit test packages run in parallel).
	srv := httptest.NewServer(NewHandler(m, HTTPConfig{Env: []string{"GREETING=hey"}, Timeout: 5 * time.Second, Stderr: lockedWriter{&mu, &logs}}))
	defer srv.Close()
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{name: "root", method: "GET", path: "/", code: 200, want: "hey: GET /\n"},
		{name: "echo", method: "POST", path: "/echo?a=1&b=2", body: "payload", code: 200, want: "method=POST query=a=1&b=2 agent=strata-test body=payload\n"},
		{name: "status header", method: "GET", path: "/missing", code: 404, want: "not found: /missing\n"},
		{name: "memory limit", method: "GET", path: "/alloc?mib=200", code: 500, want: "OOMKilled: wasm module exceeded its memory limit"},
		{name: "deadline", method: "GET", path: "/loop", code: 503, want: "DeadlineExceeded: wasm handler exceeded its 5s request deadline\n"},
		{name: "still up after failures", method: "GET", path: "/healthz", code: 200, want: "ok\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			req.Header.Set("User-Agent", "strata-test")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || !strings.HasPrefix(string(b), tc.want) {
				t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, resp.StatusCode, b, tc.code, tc.want)
			}
		})
	}
}

func TestWriteCGIResponse(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		code      int
		body      string
		wantErr   bool
	}{
		{name: "plain", out: "Content-Type: text/plain\n\nhi", code: 200, body: "hi"},
		{name: "crlf status", out: "Status: 201 Created\r\nX-A: b\r\n\r\nmade", code: 201, body: "made"},
		{name: "redirect", out: "Location: /x\n\n", code: 302},
		{name: "headers only", out: "Content-Type: text/plain\n", code: 200},
		{name: "empty", out: "", wantErr: true},
		{name: "bad status", out: "Status: abc\n\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			err := writeCGIResponse(rec, []byte(tc.out))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && (rec.Code != tc.code || rec.Body.String() != tc.body) {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tc.code, tc.body)
			}
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// BenchmarkRequest measures one HTTP request through a fresh instance.
func BenchmarkRequest(b *testing.B) {
	_, httpMod := goExamples(b)
	e := newEngine(b)
	ctx := context.Background()
	m, err := e.Compile(ctx, httpMod, Options{MemoryLimit: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(ctx)
	h := NewHandler(m, HTTPConfig{})
	req := httptest.NewRequest("GET", "/size?n=1024", nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Body.Len() != 1024 {
			b.Fatalf("got %d, %d bytes", rec.Code, rec.Body.Len())
		}
	}
}

// BenchmarkInstantiateEmpty is the floor: the engine's own per-instance cost.
func BenchmarkInstantiateEmpty(b *testing.B) {
	e := newEngine(b)
	ctx := context.Background()
	m, err := e.Compile(ctx, modEmpty, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(ctx)
	for i := 0; i < b.N; i++ {
		if r := m.Run(ctx, RunConfig{}); r.Reason != ReasonCompleted {
			b.Fatal(r)
		}
	}
}

// A compilation racing Close (a server stopping while a Function's module
// loads) fails cleanly instead of panicking inside wazero.
func TestCompileAfterCloseFails(t *testing.T) {
	e, err := NewEngine("")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Compile(ctx, modEmpty, Options{}); !errors.Is(err, ErrEngineClosed) {
		t.Fatalf("Compile after Close: %v, want ErrEngineClosed", err)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

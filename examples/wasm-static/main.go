// wasm-static writes a minimal WAGI handler module: its _start writes one
// fixed response (CGI headers and a body of --size bytes) with a single
// WASI fd_write. Go modules spend milliseconds starting the Go runtime in
// every instance; this module has no runtime, so serving it measures what
// the shim itself costs per request (a fresh instance each time).
//
//	go run ./examples/wasm-static -o bin/wasm-static.wasm --size 1024
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
)

func main() {
	out := flag.String("o", "wasm-static.wasm", "output file")
	size := flag.Int("size", 1024, "body size in bytes")
	flag.Parse()
	body := bytes.Repeat([]byte("x"), *size)
	resp := append([]byte(fmt.Sprintf("Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n", len(body))), body...)
	if err := os.WriteFile(*out, Module(resp), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "wasm-static:", err)
		os.Exit(1)
	}
}

// respAddr is where the response sits in linear memory; the iovec that
// points at it is at address 0.
const respAddr = 16

// Module returns a WebAssembly binary whose _start writes resp to stdout.
func Module(resp []byte) []byte {
	i32 := byte(0x7f)
	var m bytes.Buffer
	m.Write([]byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}) // magic, version 1
	// Types: 0 = fd_write (i32 i32 i32 i32) -> i32, 1 = _start () -> ().
	section(&m, 1, vec(2,
		[]byte{0x60, 4, i32, i32, i32, i32, 1, i32},
		[]byte{0x60, 0, 0}))
	section(&m, 2, vec(1, cat(name("wasi_snapshot_preview1"), name("fd_write"), []byte{0x00, 0})))
	section(&m, 3, vec(1, []byte{1})) // function 1 has type 1
	pages := uint32((respAddr + len(resp) + 65535) / 65536)
	section(&m, 5, vec(1, cat([]byte{0x00}, uleb(pages)))) // one memory, big enough
	section(&m, 7, vec(2,                                  // exports
		cat(name("_start"), []byte{0x00, 1}),  // func 1
		cat(name("memory"), []byte{0x02, 0}))) // memory 0
	code := cat(
		[]byte{0x00},                             // no locals
		i32Const(0), i32Const(respAddr), store(), // iov.buf
		i32Const(4), i32Const(int32(len(resp))), store(), // iov.len
		i32Const(1), i32Const(0), i32Const(1), i32Const(8), // fd 1, iovs, 1 iovec, nwritten at 8
		[]byte{0x10, 0},    // call fd_write
		[]byte{0x1a, 0x0b}, // drop, end
	)
	section(&m, 10, vec(1, cat(uleb(uint32(len(code))), code)))
	section(&m, 11, vec(1, cat([]byte{0x00}, i32Const(respAddr), []byte{0x0b}, uleb(uint32(len(resp))), resp)))
	return m.Bytes()
}

func section(m *bytes.Buffer, id byte, content []byte) {
	m.WriteByte(id)
	m.Write(uleb(uint32(len(content))))
	m.Write(content)
}

func vec(n uint32, items ...[]byte) []byte { return cat(append([][]byte{uleb(n)}, items...)...) }

func name(s string) []byte { return cat(uleb(uint32(len(s))), []byte(s)) }

func i32Const(v int32) []byte { return cat([]byte{0x41}, sleb(v)) }

// store is i32.store with alignment 2^2 and offset 0.
func store() []byte { return []byte{0x36, 2, 0} }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func uleb(v uint32) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b |= 0x80
		}
		out = append(out, b)
		if v == 0 {
			return out
		}
	}
}

func sleb(v int32) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		done := (v == 0 && b&0x40 == 0) || (v == -1 && b&0x40 != 0)
		if !done {
			b |= 0x80
		}
		out = append(out, b)
		if done {
			return out
		}
	}
}

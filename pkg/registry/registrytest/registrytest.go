// Package registrytest starts Strata's embedded registry for tests.
package registrytest

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/strata-dev/strata/pkg/registry"
)

// FreeAddr returns a loopback host:port that nothing listens on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Start runs the embedded registry on a free loopback port until the test
// ends and returns its host:port.
func Start(t testing.TB) string {
	t.Helper()
	return StartAt(t, FreeAddr(t))
}

// StartAt runs the embedded registry on addr until the test ends and
// returns addr.
func StartAt(t testing.TB, addr string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv := &registry.Server{Addr: addr, RootDir: t.TempDir(), LogOutput: io.Discard}
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- srv.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return addr
}

// Hanging listens on a loopback port, accepts every connection and never
// answers, until the test ends: a registry that hangs. It returns the
// host:port and how many connections it has accepted so far.
func Hanging(t testing.TB) (addr string, accepted func() int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never read or answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
}

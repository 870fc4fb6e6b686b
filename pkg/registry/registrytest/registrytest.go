// Package registrytest starts Strata's embedded registry for tests.
package registrytest

import (
	"context"
	"io"
	"net"
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

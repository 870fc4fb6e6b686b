package supervise

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// httpGrace bounds how long a stopping HTTP server waits for requests in
// flight before it closes their connections.
const httpGrace = time.Second

// ServeHTTP is the body of an HTTP component: it listens on addr, calls
// ready, and serves until ctx ends (then shuts down gracefully, for at most
// a second) or serving fails, which it returns. A server with a TLSConfig
// serves TLS with its certificates.
func ServeHTTP(ctx context.Context, addr string, srv *http.Server, ready func()) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(l, "", "")
			return
		}
		errc <- srv.Serve(l)
	}()
	ready()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			err = errors.New("server closed")
		}
		return fmt.Errorf("serve %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), httpGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	return nil
}

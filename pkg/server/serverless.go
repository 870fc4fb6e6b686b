package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/strata-dev/strata/pkg/serverless"
)

// startServerless runs the Function controller, gateway and autoscaler,
// and the metrics endpoint that reports them. The Function CRD is
// installed with the others by startImagePolicy.
func startServerless(ctx context.Context, cfg *Config, rc *rest.Config) error {
	s, err := serverless.Start(ctx, rc, serverless.Options{
		GatewayAddr:  net.JoinHostPort(cfg.BindAddress, strconv.Itoa(cfg.GatewayPort)),
		Domain:       cfg.FunctionDomain,
		URLPort:      cfg.GatewayPort,
		WasmCacheDir: cfg.path("serverless", "wasm-cache"),
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", s.MetricsHandler())
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.MetricsPort))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.ErrorS(err, "Metrics endpoint stopped")
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return nil
}

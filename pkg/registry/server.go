// Package registry runs Strata's OCI registry (the distribution project's
// registry, embedded) and builds and pushes images without Docker.
package registry

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // storage driver registration
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"
	"k8s.io/klog/v2"

	"github.com/strata-dev/strata/pkg/supervise"
)

// Server is an OCI distribution registry storing blobs under a directory.
type Server struct {
	// Addr is host:port, normally on loopback.
	Addr string
	// RootDir holds the blobs and manifests.
	RootDir string
	// LogOutput receives the registry's own access and error logs.
	LogOutput io.Writer
	// PullAddr, if set, also serves the registry over TLS (CertFile,
	// KeyFile) for reads only: how other nodes pull. Pushes stay on Addr.
	PullAddr, CertFile, KeyFile string
}

// Run serves the registry on Addr until ctx ends; it calls ready once the
// listener is bound and returns an error if serving fails.
func (s *Server) Run(ctx context.Context, ready func()) error {
	app, err := s.app(ctx)
	if err != nil {
		return err
	}
	klog.InfoS("OCI registry listening", "address", s.Addr, "root", s.RootDir, "pullAddress", s.PullAddr)
	if s.PullAddr == "" {
		if err := supervise.ServeHTTP(ctx, s.Addr, &http.Server{Handler: app, ReadHeaderTimeout: 30 * time.Second}, ready); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
		return nil
	}
	cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return fmt.Errorf("registry: pull listener certificate: %w", err)
	}
	pull := &http.Server{Handler: readOnly(app), ReadHeaderTimeout: 30 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	g, gctx := errgroup.WithContext(ctx)
	var both sync.WaitGroup
	both.Add(2)
	go func() { both.Wait(); ready() }()
	g.Go(func() error {
		return supervise.ServeHTTP(gctx, s.Addr, &http.Server{Handler: app, ReadHeaderTimeout: 30 * time.Second}, both.Done)
	})
	g.Go(func() error { return supervise.ServeHTTP(gctx, s.PullAddr, pull, both.Done) })
	if err := g.Wait(); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}

// readOnly refuses every request that could change the registry: the
// pull listener faces the network, pushes need loopback.
func readOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNSUPPORTED","message":"this listener serves pulls only; push on the server's loopback address"}]}`)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) app(ctx context.Context) (http.Handler, error) {
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("registry secret: %w", err)
	}
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem":  configuration.Parameters{"rootdirectory": filepath.Clean(s.RootDir)},
			"delete":      configuration.Parameters{"enabled": true},
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
		},
	}
	cfg.HTTP.Addr = s.Addr
	cfg.HTTP.Secret = hex.EncodeToString(secret)
	cfg.Log.AccessLog.Disabled = true
	// distribution logs through logrus; keep it in Strata's log file.
	logrus.SetLevel(logrus.WarnLevel)
	if s.LogOutput != nil {
		logrus.SetOutput(s.LogOutput)
	}
	return handlers.NewApp(ctx, cfg), nil
}

// Package registry runs Strata's OCI registry (the distribution project's
// registry, embedded) and builds and pushes images without Docker.
package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // storage driver registration
	"github.com/sirupsen/logrus"
	"k8s.io/klog/v2"
)

// Server is an OCI distribution registry storing blobs under a directory.
type Server struct {
	// Addr is host:port, normally on loopback.
	Addr string
	// RootDir holds the blobs and manifests.
	RootDir string
	// LogOutput receives the registry's own access and error logs.
	LogOutput io.Writer

	srv *http.Server
}

// Start binds the listener and serves in the background.
func (s *Server) Start(ctx context.Context) error {
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("registry secret: %w", err)
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

	l, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("registry listen %s: %w", s.Addr, err)
	}
	app := handlers.NewApp(ctx, cfg)
	s.srv = &http.Server{Handler: app, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.ErrorS(err, "Registry stopped")
		}
	}()
	klog.InfoS("OCI registry listening", "address", s.Addr, "root", s.RootDir)
	return nil
}

// Shutdown stops accepting requests and waits for in-flight ones.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Shutdown(ctx)
}

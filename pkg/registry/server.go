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

	"github.com/strata-dev/strata/pkg/httpauth"
	"github.com/strata-dev/strata/pkg/supervise"
)

// Server is an OCI distribution registry storing blobs under a directory.
type Server struct {
	// Addr is host:port, normally on loopback.
	Addr string
	// OwnerOnly serves on Addr only processes of root and of this
	// process's user; the kernel's socket table says who connected, which
	// works for loopback connections from this host's network namespace.
	OwnerOnly bool
	// RootDir holds the blobs and manifests.
	RootDir string
	// LogOutput receives the registry's own access and error logs.
	LogOutput io.Writer
	// TLSAddr, if set, also serves the registry over TLS (CertFile,
	// KeyFile) to clients that present Kubernetes credentials (ClientCAFile
	// signs client certificates; Auth checks them and RBAC): how other
	// nodes pull, with their own certificates.
	TLSAddr, CertFile, KeyFile, ClientCAFile string
	Auth                                     *httpauth.Delegated
	// Filter, when set, wraps the registry for both listeners (the disk
	// space guard's refusal of pushes).
	Filter func(http.Handler) http.Handler
}

// Run serves the registry on Addr until ctx ends; it calls ready once the
// listener is bound and returns an error if serving fails.
func (s *Server) Run(ctx context.Context, ready func()) error {
	app, err := s.app(ctx)
	if err != nil {
		return err
	}
	if s.Filter != nil {
		app = s.Filter(app)
	}
	klog.InfoS("OCI registry listening", "address", s.Addr, "root", s.RootDir, "tlsAddress", s.TLSAddr)
	local := &http.Server{Handler: app, ReadHeaderTimeout: 30 * time.Second}
	if s.OwnerOnly {
		local.Handler, local.ConnContext = ownerOnly(app), loopbackPeer
	}
	if s.TLSAddr == "" {
		if err := supervise.ServeHTTP(ctx, s.Addr, local, ready); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
		return nil
	}
	network, err := s.tlsServer(app)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	var both sync.WaitGroup
	both.Add(2)
	go func() { both.Wait(); ready() }()
	g.Go(func() error { return supervise.ServeHTTP(gctx, s.Addr, local, both.Done) })
	g.Go(func() error { return supervise.ServeHTTP(gctx, s.TLSAddr, network, both.Done) })
	if err := g.Wait(); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}

// tlsServer is the network listener: TLS, and Kubernetes credentials for
// every request.
func (s *Server) tlsServer(app http.Handler) (*http.Server, error) {
	if s.Auth == nil {
		return nil, errors.New("registry: the TLS listener needs an authenticator")
	}
	tc, err := httpauth.ServerTLS(s.CertFile, s.KeyFile, s.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("registry: TLS listener: %w", err)
	}
	s.Auth.Realm = "strata registry"
	return &http.Server{Handler: s.Auth.Handler(attributes, app), ReadHeaderTimeout: 30 * time.Second, TLSConfig: tc}, nil
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

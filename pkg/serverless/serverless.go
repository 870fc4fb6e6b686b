// Package serverless runs Functions: the gateway (activator) that routes
// requests and holds them while a function scales from zero, the
// Knative-style autoscaler, and the warm wasm host that answers wasm
// functions' cold requests without a pod. README.md explains the design.
package serverless

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	gcrv1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servingv1 "github.com/strata-dev/strata/api/serving/v1alpha1"
	"github.com/strata-dev/strata/pkg/controllers/function"
	"github.com/strata-dev/strata/pkg/registry"
	"github.com/strata-dev/strata/pkg/supervise"
	"github.com/strata-dev/strata/pkg/wasm"
)

// Options configure the serverless part of a server.
type Options struct {
	// GatewayAddr is where the gateway listens (host:port).
	GatewayAddr string
	// Domain is the functions' host name suffix: <fn>.<ns>.<Domain>.
	Domain string
	// URLPort is the gateway port written in the functions' URLs.
	URLPort int
	// WasmCacheDir keeps the wasm host's compiled modules.
	WasmCacheDir string
	// MaxQueue bounds the requests one function holds while it has no
	// replica.
	MaxQueue int
	// Security is the listener's TLS and who may call functions.
	Security Security
}

// Server is the running serverless part.
type Server struct {
	Gateway *Gateway
	Host    *WasmHost
	mgr     manager.Manager
	engine  *wasm.Engine
	scaler  *scaler
	addr    string
	tls     *tls.Config
}

// Scheme knows the types the serverless manager reads and writes.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, servingv1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// New builds the Function controller, the gateway and the autoscaler;
// Run runs them. The Function CRD must be installed before Run.
func New(rc *rest.Config, o Options) (*Server, error) {
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	// Only the functions' own objects are cached, not every pod.
	hasFunction, _ := labels.NewRequirement(function.LabelFunction, selection.Exists, nil)
	onlyFunctions := cache.ByObject{Label: labels.NewSelector().Add(*hasFunction)}
	mgr, err := manager.New(rc, manager.Options{
		Scheme:                 scheme,
		Logger:                 klog.NewKlogr().WithName("serverless"),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:                onlyFunctions,
			&appsv1.Deployment{}:         onlyFunctions,
			&corev1.Service{}:            onlyFunctions,
			&discoveryv1.EndpointSlice{}: onlyFunctions,
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("serverless manager: %w", err)
	}
	engine, err := wasm.NewEngine(o.WasmCacheDir)
	if err != nil {
		return nil, err
	}
	changed := make(chan event.TypedGenericEvent[*servingv1.Function], 64)
	notify := func(key types.NamespacedName) {
		select {
		case changed <- event.TypedGenericEvent[*servingv1.Function]{Object: &servingv1.Function{ObjectMeta: objectMeta(key)}}:
		default:
			klog.InfoS("Function status update dropped (queue full); the next resync catches up", "function", key)
		}
	}
	host := NewWasmHost(engine, func(ctx context.Context, ref string) ([]byte, *gcrv1.ConfigFile, error) {
		return registry.FetchWasmModule(ctx, ref)
	}, notify)
	gw := NewGateway(o.Domain, host)
	gw.MaxQueue = o.MaxQueue
	if gw.Auth, err = o.Security.authenticator(rc); err != nil {
		return nil, fmt.Errorf("function gateway: %w", err)
	}
	tc, err := o.Security.tlsConfig()
	if err != nil {
		return nil, err
	}
	gw.Changed = notify
	api := mgr.GetAPIReader()
	gw.Exists = func(ctx context.Context, key types.NamespacedName) (bool, error) {
		err := api.Get(ctx, key, &servingv1.Function{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}
	sc := &scaler{client: mgr.GetClient(), gateway: gw, waking: map[types.NamespacedName]bool{}}
	gw.Wake = sc.wake

	rec := &function.Reconciler{
		Client: mgr.GetClient(), Domain: o.Domain, GatewayPort: o.URLPort, TLS: o.Security.TLS(), Changed: changed,
		Problems: func(key types.NamespacedName) *function.Problem {
			if p := host.Problem(key); p != nil {
				return p
			}
			if gw.Failing(key) {
				return &function.Problem{Reason: servingv1.ReasonModuleFailing,
					Message: fmt.Sprintf("the module failed its last %d requests (trap, out of memory or error exit); requests get 502 with the reason", failingAfter)}
			}
			return nil
		},
	}
	if err := rec.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("function controller: %w", err)
	}
	if err := (&syncer{client: mgr.GetClient(), gateway: gw, host: host}).setup(mgr); err != nil {
		return nil, fmt.Errorf("function gateway sync: %w", err)
	}

	return &Server{Gateway: gw, Host: host, mgr: mgr, engine: engine, scaler: sc, addr: o.GatewayAddr, tls: tc}, nil
}

// Run serves the gateway and runs the controller and the autoscaler until
// ctx ends; it calls ready once the gateway listens and the controller's
// cache has synced, and returns the first failure of either.
func (s *Server) Run(ctx context.Context, ready func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() {
		if err := s.mgr.Start(ctx); err != nil {
			errc <- fmt.Errorf("function controller: %w", err)
			return
		}
		errc <- nil
	}()
	go s.scaler.run(ctx)
	defer func() {
		s.Host.Close()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.engine.Close(sctx)
	}()
	serving := make(chan struct{})
	go func() {
		err := supervise.ServeHTTP(ctx, s.addr, &http.Server{Handler: s.Gateway, ReadHeaderTimeout: 10 * time.Second, TLSConfig: s.tls}, func() { close(serving) })
		if err != nil {
			err = fmt.Errorf("function gateway: %w", err)
		}
		errc <- err
	}()
	select {
	case <-serving:
	case err := <-errc:
		return err
	}
	if !s.mgr.GetCache().WaitForCacheSync(ctx) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("function controller: cache did not sync")
	}
	ready()
	select {
	case err := <-errc:
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("function controller stopped")
		}
		return err
	case <-ctx.Done():
		cancel()
		<-errc
		<-errc
		return nil
	}
}

// MetricsHandler serves the gateway's metrics in the Prometheus text
// format.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.Gateway.metrics.registry, promhttp.HandlerOpts{})
}

func objectMeta(key types.NamespacedName) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}
}

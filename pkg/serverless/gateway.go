package serverless

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/klog/v2"

	servingv1 "github.com/strata-dev/strata/api/serving/v1alpha1"
	"github.com/strata-dev/strata/pkg/controllers/function"
	"github.com/strata-dev/strata/pkg/httpauth"
)

// Response headers that say how the gateway answered.
const (
	HeaderBackend   = "X-Strata-Backend"    // pod/<name> or wasm-host
	HeaderColdStart = "X-Strata-Cold-Start" // "true" when no replica was ready
)

// DefaultMaxQueue bounds the requests one function may hold waiting for a
// replica; more get 503 at once.
const DefaultMaxQueue = 256

// Gateway is the functions' HTTP entry point and activator: it routes by
// host name (<fn>.<ns>.<domain>) or path (/fn/<ns>/<fn>/), forwards to a
// ready replica with the fewest requests in flight, and when there is
// none, answers from the wasm host (wasm functions) or holds the request
// until a replica is ready (container functions).
type Gateway struct {
	Domain   string
	MaxQueue int
	Host     *WasmHost
	// Wake asks for a first replica now, without waiting for the next
	// autoscaler tick.
	Wake func(types.NamespacedName)
	// Changed is told when a function starts or stops failing, so its
	// status follows.
	Changed func(types.NamespacedName)
	// Exists asks the API server (not a cache) whether a function the
	// gateway has not been handed yet exists: a request sent right after
	// the Function was created can beat the sync loop, and should wait
	// for it rather than get 404. Nil: unknown functions get 404 at once.
	Exists func(context.Context, types.NamespacedName) (bool, error)
	// Auth, when set, lets through only callers that RBAC allows to
	// invoke the function.
	Auth *httpauth.Delegated

	metrics   *metrics
	transport *http.Transport
	lookups   chan struct{}      // bounds concurrent Exists calls
	lookup    singleflight.Group // one Exists call per function at a time

	mu    sync.RWMutex
	fns   map[types.NamespacedName]*fnState
	added chan struct{} // closed (and replaced) when a function is added
}

// syncWait is how long a request for a function that exists in the API
// waits for the sync loop to hand it to the gateway.
const syncWait = 5 * time.Second

// endpoint is one ready replica.
type endpoint struct {
	pod      string
	addr     string // ip:port
	inFlight atomic.Int64
}

// fnState is what the gateway knows of one function.
type fnState struct {
	key  types.NamespacedName
	conc *concurrency
	auto *Autoscaler

	mu        sync.Mutex
	runtime   servingv1.Runtime
	timeout   time.Duration
	endpoints []*endpoint
	readyCh   chan struct{} // closed when a replica becomes ready
	problem   *function.Problem
	desired   int32
	ready     int32
	failures  int // consecutive wasm failures (trap, OOM, error)
}

// NewGateway returns a gateway for functions under domain.
func NewGateway(domain string, host *WasmHost) *Gateway {
	return &Gateway{
		Domain: domain, MaxQueue: DefaultMaxQueue, Host: host,
		metrics: newMetrics(),
		transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     60 * time.Second,
		},
		lookups: make(chan struct{}, 8),
		fns:     map[types.NamespacedName]*fnState{},
		added:   make(chan struct{}),
	}
}

// Snapshot is the state of a function the sync loop hands the gateway.
type Snapshot struct {
	Runtime   servingv1.Runtime
	Timeout   time.Duration
	Policy    ScalePolicy
	Endpoints map[string]string // pod name -> ip:port, ready ones only
	Problem   *function.Problem // why it cannot answer, from its status
	Desired   int32
	Ready     int32
}

// Update records key's state.
func (g *Gateway) Update(key types.NamespacedName, s Snapshot) {
	g.mu.Lock()
	st, ok := g.fns[key]
	if !ok {
		st = &fnState{key: key, conc: newConcurrency(time.Now(), 600), auto: &Autoscaler{}, readyCh: make(chan struct{})}
		g.fns[key] = st
		close(g.added)
		g.added = make(chan struct{})
	}
	g.mu.Unlock()

	st.mu.Lock()
	defer st.mu.Unlock()
	st.runtime, st.timeout, st.problem, st.desired, st.ready = s.Runtime, s.Timeout, s.Problem, s.Desired, s.Ready
	st.auto.Policy = s.Policy
	// Keep the endpoint objects (and their in-flight counts) that remain.
	eps := make([]*endpoint, 0, len(s.Endpoints))
	for pod, addr := range s.Endpoints {
		var e *endpoint
		for _, old := range st.endpoints {
			if old.pod == pod && old.addr == addr {
				e = old
			}
		}
		if e == nil {
			e = &endpoint{pod: pod, addr: addr}
		}
		eps = append(eps, e)
	}
	hadNone := len(st.endpoints) == 0
	st.endpoints = eps
	if hadNone && len(eps) > 0 {
		close(st.readyCh)
	} else if !hadNone && len(eps) == 0 {
		st.readyCh = make(chan struct{})
	}
	g.metrics.replicas.WithLabelValues(key.Namespace, key.Name).Set(float64(s.Ready))
	g.metrics.desired.WithLabelValues(key.Namespace, key.Name).Set(float64(s.Desired))
}

// Remove forgets key.
func (g *Gateway) Remove(key types.NamespacedName) {
	g.mu.Lock()
	delete(g.fns, key)
	g.mu.Unlock()
	g.metrics.forget(key.Namespace, key.Name)
}

func (g *Gateway) get(key types.NamespacedName) *fnState {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.fns[key]
}

// awaitSync handles a request for a function the gateway does not know:
// if the API has it (Exists), it waits up to syncWait for the sync loop
// to hand it over. exists reports what the API said; false also when the
// gateway cannot ask (no Exists, too many lookups at once, an error).
func (g *Gateway) awaitSync(ctx context.Context, key types.NamespacedName) (st *fnState, exists bool) {
	if g.Exists == nil {
		return nil, false
	}
	// Requests for one function share one lookup (a burst right after a
	// deploy); distinct names are bounded, so that a flood of unknown
	// names does not become a flood of API reads.
	v, err, _ := g.lookup.Do(key.String(), func() (any, error) {
		select {
		case g.lookups <- struct{}{}:
			defer func() { <-g.lookups }()
		default:
			return false, nil
		}
		// Not the first request's context: the others share the answer.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		return g.Exists(lctx, key)
	})
	if ok, _ := v.(bool); err != nil || !ok {
		return nil, false
	}
	timeout := time.NewTimer(syncWait)
	defer timeout.Stop()
	for {
		g.mu.RLock()
		st, added := g.fns[key], g.added
		g.mu.RUnlock()
		if st != nil {
			return st, true
		}
		select {
		case <-added:
		case <-timeout.C:
			return nil, true
		case <-ctx.Done():
			return nil, true
		}
	}
}

// each calls f for every function.
func (g *Gateway) each(f func(*fnState)) {
	g.mu.RLock()
	all := make([]*fnState, 0, len(g.fns))
	for _, st := range g.fns {
		all = append(all, st)
	}
	g.mu.RUnlock()
	for _, st := range all {
		f(st)
	}
}

// route finds the function a request is for, and the path it sees.
func (g *Gateway) route(r *http.Request) (types.NamespacedName, string, bool) {
	// Host names are case-insensitive; object names are lower case.
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if suffix := "." + strings.ToLower(g.Domain); strings.HasSuffix(host, suffix) {
		if fn, ns, ok := strings.Cut(strings.TrimSuffix(host, suffix), "."); ok && validKey(ns, fn) {
			// "OPTIONS *" and absolute-form requests need not start with "/".
			return types.NamespacedName{Namespace: ns, Name: fn}, "/" + strings.TrimPrefix(r.URL.Path, "/"), true
		}
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/fn/"); ok {
		parts := strings.SplitN(rest, "/", 3)
		if len(parts) >= 2 && validKey(parts[0], parts[1]) {
			path := "/"
			if len(parts) == 3 {
				path += parts[2]
			}
			return types.NamespacedName{Namespace: parts[0], Name: parts[1]}, path, true
		}
	}
	return types.NamespacedName{}, "", false
}

// validKey reports whether ns and name can name a Function (both DNS
// labels: the function's Service carries its name). Anything else is a
// 404 without asking the API server.
func validKey(ns, name string) bool {
	return len(validation.IsDNS1123Label(ns)) == 0 && len(validation.IsDNS1123Label(name)) == 0
}

// statusWriter remembers the status code for metrics.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote time.Time
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code, w.wrote = code, time.Now()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (g *Gateway) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	key, path, ok := g.route(r)
	if !ok {
		http.Error(rw, fmt.Sprintf("no function in this request: use http://<function>.<namespace>.%s/ or /fn/<namespace>/<function>/", g.Domain), http.StatusNotFound)
		return
	}
	if g.Auth != nil {
		if _, ok := g.Auth.Check(rw, r, invokeAttributes(key.Name, key.Namespace)); !ok {
			return
		}
	}
	st := g.get(key)
	if st == nil {
		var exists bool
		if st, exists = g.awaitSync(r.Context(), key); st == nil {
			if exists {
				http.Error(rw, fmt.Sprintf("function %s is still being set up: retry in a moment", key), http.StatusServiceUnavailable)
				return
			}
			http.Error(rw, fmt.Sprintf("function %s not found (strata function list shows what is deployed)", key), http.StatusNotFound)
			return
		}
	}
	w := &statusWriter{ResponseWriter: rw}
	st.conc.add(start, 1)
	g.metrics.inFlight.WithLabelValues(key.Namespace, key.Name).Inc()
	backend, cold := "none", false
	defer func() {
		st.conc.add(time.Now(), -1)
		g.metrics.inFlight.WithLabelValues(key.Namespace, key.Name).Dec()
		if w.code == 0 {
			w.code, w.wrote = http.StatusOK, time.Now()
		}
		lat := w.wrote.Sub(start).Seconds()
		g.metrics.requests.WithLabelValues(key.Namespace, key.Name, fmt.Sprint(w.code), backend).Inc()
		g.metrics.latency.WithLabelValues(key.Namespace, key.Name).Observe(lat)
		if cold {
			g.metrics.coldStarts.WithLabelValues(key.Namespace, key.Name).Inc()
			g.metrics.coldLatency.WithLabelValues(key.Namespace, key.Name).Observe(lat)
		}
	}()

	st.mu.Lock()
	timeout, problem, runtime := st.timeout, st.problem, st.runtime
	st.mu.Unlock()
	if problem != nil && problem.Reason != servingv1.ReasonModuleFailing {
		// The function cannot answer; holding the request would only
		// delay the same answer.
		unavailable(w, key, problem)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	r = r.WithContext(ctx)
	r.URL.Path, r.URL.RawPath = path, ""

	for attempt := 0; ; attempt++ {
		ep, ready := st.pick()
		if ep == nil {
			if attempt == 0 {
				cold = true
				w.Header().Set(HeaderColdStart, "true")
			}
			if g.Wake != nil {
				g.Wake(key)
			}
			if runtime == servingv1.RuntimeWasm && g.Host != nil {
				if h, ok := g.Host.Handler(key); ok {
					backend = "wasm-host"
					w.Header().Set(HeaderBackend, backend)
					g.serveHost(w, r, st, h)
					return
				}
			}
			if !g.waitReady(w, ctx, st, ready) {
				return
			}
			continue
		}
		backend = "pod"
		w.Header().Set(HeaderBackend, "pod/"+ep.pod)
		if g.forward(w, r, st, ep) || attempt >= 3 {
			return
		}
		// The replica refused the connection (it is going away); the
		// request was not sent, so try another.
		w.Header().Del(HeaderBackend)
	}
}

// pick returns the ready replica with the fewest requests in flight, or
// the channel that is closed when one is ready.
func (st *fnState) pick() (*endpoint, <-chan struct{}) {
	st.mu.Lock()
	defer st.mu.Unlock()
	var best *endpoint
	for _, e := range st.endpoints {
		if best == nil || e.inFlight.Load() < best.inFlight.Load() {
			best = e
		}
	}
	return best, st.readyCh
}

// waitReady holds the request until a replica is ready; it answers the
// request and returns false when it cannot.
func (g *Gateway) waitReady(w http.ResponseWriter, ctx context.Context, st *fnState, ready <-chan struct{}) bool {
	st.conc.wait(1)
	defer st.conc.wait(-1)
	_, waiting := st.conc.current()
	max := g.MaxQueue
	if max <= 0 {
		max = DefaultMaxQueue
	}
	if waiting > max {
		http.Error(w, fmt.Sprintf("function %s: %d requests already wait for a replica; try again later", st.key, max), http.StatusServiceUnavailable)
		return false
	}
	q := g.metrics.queueDepth.WithLabelValues(st.key.Namespace, st.key.Name)
	q.Inc()
	defer q.Dec()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ready:
			return true
		case <-tick.C:
			// A problem found while waiting (the image cannot be pulled)
			// ends the wait.
			st.mu.Lock()
			p := st.problem
			st.mu.Unlock()
			if p != nil && p.Reason != servingv1.ReasonModuleFailing {
				unavailable(w, st.key, p)
				return false
			}
		case <-ctx.Done():
			st.mu.Lock()
			p := st.problem
			st.mu.Unlock()
			msg := fmt.Sprintf("function %s: no replica became ready within the request timeout", st.key)
			if p != nil {
				msg += fmt.Sprintf(" (%s: %s)", p.Reason, p.Message)
			}
			http.Error(w, msg, http.StatusServiceUnavailable)
			return false
		}
	}
}

func unavailable(w http.ResponseWriter, key types.NamespacedName, p *function.Problem) {
	code := http.StatusServiceUnavailable
	if p.Reason == servingv1.ReasonInvalidModule || p.Reason == servingv1.ReasonCrashing {
		code = http.StatusBadGateway
	}
	http.Error(w, fmt.Sprintf("function %s is not ready: %s: %s", key, p.Reason, p.Message), code)
}

// forward proxies r to ep. It returns false, having written nothing, when
// the connection was refused and the request can go elsewhere.
func (g *Gateway) forward(w *statusWriter, r *http.Request, st *fnState, ep *endpoint) bool {
	ep.inFlight.Add(1)
	defer ep.inFlight.Add(-1)
	retry := false
	canRetry := r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0
	p := &httputil.ReverseProxy{
		Transport: g.transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", ep.addr
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
		},
		ModifyResponse: func(resp *http.Response) error {
			g.noteWasmResult(st, resp.Header.Get("X-Strata-Wasm-Reason"), resp.StatusCode)
			if resp.StatusCode == http.StatusInternalServerError && resp.Header.Get("X-Strata-Wasm-Reason") != "" {
				resp.StatusCode = http.StatusBadGateway
				resp.Status = http.StatusText(http.StatusBadGateway)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			var op *net.OpError
			if canRetry && errors.As(err, &op) && op.Op == "dial" {
				st.dropEndpoint(ep)
				retry = true
				return
			}
			code := http.StatusBadGateway
			if errors.Is(err, context.DeadlineExceeded) {
				code = http.StatusGatewayTimeout
			}
			klog.V(2).InfoS("Function request failed", "function", st.key, "pod", ep.pod, "err", err)
			http.Error(w, fmt.Sprintf("function %s: replica %s: %v", st.key, ep.pod, err), code)
		},
	}
	p.ServeHTTP(w, r)
	return !retry
}

// dropEndpoint stops sending to ep until the next update says otherwise.
func (st *fnState) dropEndpoint(ep *endpoint) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for i, e := range st.endpoints {
		if e == ep {
			st.endpoints = append(st.endpoints[:i:i], st.endpoints[i+1:]...)
			break
		}
	}
	if len(st.endpoints) == 0 {
		st.readyCh = make(chan struct{})
	}
}

func (g *Gateway) serveHost(w *statusWriter, r *http.Request, st *fnState, h http.Handler) {
	rec := &wasmResultWriter{statusWriter: w}
	h.ServeHTTP(rec, r)
	g.noteWasmResult(st, rec.reason, rec.code)
}

// wasmResultWriter turns the wasm handler's 500 for a failed module into
// 502 (the upstream failed, not the gateway) and keeps the reason.
type wasmResultWriter struct {
	*statusWriter
	reason string
}

func (w *wasmResultWriter) WriteHeader(code int) {
	w.reason = w.Header().Get("X-Strata-Wasm-Reason")
	if code == http.StatusInternalServerError && w.reason != "" {
		code = http.StatusBadGateway
	}
	w.statusWriter.WriteHeader(code)
}

func (w *wasmResultWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.statusWriter.Write(p)
}

// failingAfter is how many wasm failures in a row mark a function as
// failing in its status.
const failingAfter = 3

// noteWasmResult counts wasm module failures (trap, OOM, error exit; not
// deadlines, which are the request's) so that a module that fails every
// request shows as ModuleFailing in the Function's status.
func (g *Gateway) noteWasmResult(st *fnState, reason string, code int) {
	st.mu.Lock()
	was := st.failures >= failingAfter
	switch {
	case reason == "" && code < 500:
		st.failures = 0
	case reason != "" && reason != "DeadlineExceeded":
		st.failures++
	}
	now := st.failures >= failingAfter
	st.mu.Unlock()
	if was != now && g.Changed != nil {
		g.Changed(st.key)
	}
}

// Failing reports whether key's module has failed its last requests.
func (g *Gateway) Failing(key types.NamespacedName) bool {
	st := g.get(key)
	if st == nil {
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.failures >= failingAfter
}

package serverless

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	servingv1 "github.com/strata-dev/strata/api/serving/v1alpha1"
	"github.com/strata-dev/strata/pkg/controllers/function"
)

func TestRoute(t *testing.T) {
	g := NewGateway("localhost", nil)
	tests := []struct {
		host, path   string
		want         types.NamespacedName
		wantPath     string
		wantNotFound bool
	}{
		{host: "hello.default.localhost:8088", path: "/a/b", want: types.NamespacedName{Namespace: "default", Name: "hello"}, wantPath: "/a/b"},
		{host: "hello.team-a.localhost", path: "/", want: types.NamespacedName{Namespace: "team-a", Name: "hello"}, wantPath: "/"},
		{host: "127.0.0.1:8088", path: "/fn/default/hello/x/y", want: types.NamespacedName{Namespace: "default", Name: "hello"}, wantPath: "/x/y"},
		{host: "127.0.0.1:8088", path: "/fn/default/hello", want: types.NamespacedName{Namespace: "default", Name: "hello"}, wantPath: "/"},
		{host: "a.b.c.localhost", path: "/", wantNotFound: true},
		{host: "localhost", path: "/", wantNotFound: true},
		{host: "127.0.0.1", path: "/fn/default/", wantNotFound: true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, tt.path, nil)
		r.Host = tt.host
		key, path, ok := g.route(r)
		if ok == tt.wantNotFound || (ok && (key != tt.want || path != tt.wantPath)) {
			t.Errorf("route(%s%s) = %v %q %v", tt.host, tt.path, key, path, ok)
		}
	}
}

// A function that cannot answer gets a quick error naming the reason; an
// unknown one gets 404; one that waits past its timeout gets 503.
func TestGatewayErrors(t *testing.T) {
	g := NewGateway("localhost", nil)
	key := types.NamespacedName{Namespace: "default", Name: "broken"}
	g.Update(key, Snapshot{Runtime: servingv1.RuntimeContainer, Timeout: time.Second,
		Problem: &function.Problem{Reason: servingv1.ReasonImagePull, Message: "pull localhost:5000/x:v1: not found"}})
	slow := types.NamespacedName{Namespace: "default", Name: "slow"}
	g.Update(slow, Snapshot{Runtime: servingv1.RuntimeContainer, Timeout: 200 * time.Millisecond})
	woken := 0
	g.Wake = func(types.NamespacedName) { woken++ }
	tests := []struct {
		host     string
		wantCode int
		wantBody string
	}{
		{"broken.default.localhost", 503, "ImagePullFailed: pull localhost:5000/x:v1: not found"},
		{"nope.default.localhost", 404, "function default/nope not found"},
		{"slow.default.localhost", 503, "no replica became ready within the request timeout"},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Host = tt.host
		g.ServeHTTP(w, r)
		if w.Code != tt.wantCode || !strings.Contains(w.Body.String(), tt.wantBody) {
			t.Errorf("%s: %d %q, want %d %q", tt.host, w.Code, w.Body.String(), tt.wantCode, tt.wantBody)
		}
	}
	if woken != 1 {
		t.Errorf("wake called %d times, want once (for the slow function)", woken)
	}
}

// Requests go to the ready replica with the fewest in flight, and a
// request held at zero is forwarded once a replica appears.
func TestGatewayForwardsWhenReady(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("pod says " + r.URL.Path))
	}))
	defer backend.Close()
	g := NewGateway("localhost", nil)
	key := types.NamespacedName{Namespace: "default", Name: "fn"}
	g.Update(key, Snapshot{Runtime: servingv1.RuntimeContainer, Timeout: 5 * time.Second})
	g.Wake = func(types.NamespacedName) {
		go func() {
			time.Sleep(100 * time.Millisecond)
			g.Update(key, Snapshot{Runtime: servingv1.RuntimeContainer, Timeout: 5 * time.Second,
				Endpoints: map[string]string{"fn-1": strings.TrimPrefix(backend.URL, "http://")}, Ready: 1, Desired: 1})
		}()
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/fn/default/fn/hi", nil)
	g.ServeHTTP(w, r)
	if w.Code != 200 || w.Body.String() != "pod says /hi" || w.Header().Get(HeaderColdStart) != "true" || w.Header().Get(HeaderBackend) != "pod/fn-1" {
		t.Fatalf("got %d %q %v", w.Code, w.Body.String(), w.Header())
	}
}

// A replica that refuses the connection (it is going away) costs the
// request nothing: it is sent to another one.
func TestGatewayRetriesRefusedConnection(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer backend.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadAddr := strings.TrimPrefix(dead.URL, "http://")
	dead.Close()
	g := NewGateway("localhost", nil)
	key := types.NamespacedName{Namespace: "default", Name: "fn"}
	g.Update(key, Snapshot{Runtime: servingv1.RuntimeContainer, Timeout: 5 * time.Second, Ready: 2, Desired: 2,
		Endpoints: map[string]string{"fn-dead": deadAddr, "fn-live": strings.TrimPrefix(backend.URL, "http://")}})
	// Make the dead replica the one picked first.
	for _, e := range g.get(key).endpoints {
		if e.pod == "fn-live" {
			e.inFlight.Store(5)
		}
	}
	for i := 0; i < 2; i++ {
		w := httptest.NewRecorder()
		g.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/fn/default/fn/", nil))
		if w.Code != 200 || w.Body.String() != "ok" || w.Header().Get(HeaderBackend) != "pod/fn-live" {
			t.Fatalf("request %d: %d %q %v", i, w.Code, w.Body.String(), w.Header())
		}
	}
}

// A request that beats the sync loop to a function the API already has
// waits for it instead of getting 404; a function the API does not have
// still gets 404 at once, and one that never reaches the gateway gets 503.
func TestGatewayAwaitsSync(t *testing.T) {
	g := NewGateway("localhost", nil)
	inAPI := map[string]bool{"late": true, "stuck": true}
	var lookups atomic.Int64
	g.Exists = func(_ context.Context, key types.NamespacedName) (bool, error) {
		lookups.Add(1)
		time.Sleep(20 * time.Millisecond) // an API round trip
		return inAPI[key.Name], nil
	}
	late := types.NamespacedName{Namespace: "default", Name: "late"}
	go func() {
		time.Sleep(100 * time.Millisecond)
		// Handed over with a problem so that the request ends at once.
		g.Update(late, Snapshot{Runtime: servingv1.RuntimeContainer, Timeout: time.Second,
			Problem: &function.Problem{Reason: servingv1.ReasonImagePull, Message: "pull failed"}})
	}()
	serve := func(host string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Host = host
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, r)
		return rec
	}
	// A burst, as right after a deploy: one lookup, every request answered.
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if rec := serve("late.default.localhost"); rec.Code != 503 || !strings.Contains(rec.Body.String(), "pull failed") {
				t.Errorf("late: %d %q, want the function's own answer once synced", rec.Code, rec.Body.String())
			}
		})
	}
	wg.Wait()
	if n := lookups.Load(); n > 2 {
		t.Errorf("%d API lookups for one function's burst, want them shared", n)
	}
	start := time.Now()
	if rec := serve("nope.default.localhost"); rec.Code != 404 || time.Since(start) > time.Second {
		t.Errorf("nope: %d after %v, want 404 at once", rec.Code, time.Since(start))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx)
	r.Host = "stuck.default.localhost"
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, r)
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "still being set up") {
		t.Errorf("stuck: %d %q, want 503 'still being set up'", rec.Code, rec.Body.String())
	}
}

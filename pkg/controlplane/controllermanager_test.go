package controlplane

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

func TestOnUserAgent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	var calls atomic.Int32
	rt := onUserAgent("/"+sharedInformersAgent, func() { calls.Add(1) })(http.DefaultTransport)
	do := func(agent string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("User-Agent", agent)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for _, agent := range []string{
		"kube-controller-manager/v1.37.2 (linux/amd64) kubernetes/abc/controller-discovery",
		"kube-controller-manager/v1.37.2 (linux/amd64) kubernetes/abc/shared-informers-not",
	} {
		do(agent)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("called %d times before the shared informers' first request", n)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { do("kube-controller-manager/v1.37.2 (linux/amd64) kubernetes/abc/shared-informers") })
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("called %d times for the shared informers' requests, want once", n)
	}
}

package serverless

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// FuzzRoute: a host or path either routes to a function whose namespace
// and name could name real objects, with a path that starts with "/", or
// routes nowhere.
func FuzzRoute(f *testing.F) {
	for _, seed := range [][2]string{
		{"hello.default.fn.strata.local", "/x"},
		{"hello.default.fn.strata.local:8080", "/"},
		{"localhost", "/fn/default/hello/a/b"},
		{"localhost", "/fn/default/hello"},
		{"a.b.c.fn.strata.local", "/fn//x"},
		{".fn.strata.local", "/fn/../x/"},
	} {
		f.Add(seed[0], seed[1])
	}
	g := NewGateway("fn.strata.local", nil)
	f.Fuzz(func(t *testing.T, host, path string) {
		r := &http.Request{Host: host, URL: &url.URL{Path: path}}
		key, p, ok := g.route(r)
		if !ok {
			return
		}
		if key.Namespace == "" || key.Name == "" || strings.Contains(key.Namespace, "/") || strings.Contains(key.Name, "/") {
			t.Fatalf("host %q path %q routes to %v", host, path, key)
		}
		if !strings.HasPrefix(p, "/") {
			t.Fatalf("host %q path %q gives path %q", host, path, p)
		}
		// A route the API could never satisfy must not reach an Exists
		// lookup with a name it would refuse.
		if len(validation.IsDNS1123Label(key.Namespace)) > 0 || len(validation.IsDNS1123Label(key.Name)) > 0 {
			t.Fatalf("host %q path %q routes to %v, which no Function can be", host, path, key)
		}
	})
}

package registry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"k8s.io/apiserver/pkg/authentication/user"
)

func TestAttributes(t *testing.T) {
	tests := []struct {
		method, path string
		want         string // verb/name; "" for authentication only
	}{
		{http.MethodGet, "/v2/", ""},
		{http.MethodGet, "/v2/_catalog", "list/"},
		{http.MethodGet, "/v2/hello/manifests/v1", "get/hello"},
		{http.MethodHead, "/v2/strata/pause/manifests/3.10", "get/strata/pause"},
		{http.MethodGet, "/v2/a/b/c/blobs/sha256:00", "get/a/b/c"},
		{http.MethodGet, "/v2/team/tags/list", "get/team"},
		{http.MethodPost, "/v2/x/blobs/uploads/", "create/x"},
		{http.MethodPatch, "/v2/x/blobs/uploads/0123", "create/x"},
		{http.MethodPut, "/v2/x/manifests/v1", "create/x"},
		{http.MethodDelete, "/v2/x/manifests/sha256:00", "delete/x"},
		// A repository named like a route word keeps its full name.
		{http.MethodGet, "/v2/blobs/manifests/v1", "get/blobs"},
		{http.MethodGet, "/v2/sha256-tags/referrers/sha256:00", "get/sha256-tags"},
		{http.MethodGet, "/healthz", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			a, ok := attributes(httptest.NewRequest(tt.method, tt.path, nil), &user.DefaultInfo{Name: "u"})
			got := ""
			if ok {
				if a.GetAPIGroup() != Group || a.GetResource() != Resource || !a.IsResourceRequest() {
					t.Fatalf("attributes %+v: want %s %s", a, Group, Resource)
				}
				got = a.GetVerb() + "/" + a.GetName()
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOwnerOnly(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	self := os.Geteuid()
	tests := []struct {
		name string
		uid  int
		want int
	}{
		{"root", 0, http.StatusOK},
		{"the server's user", self, http.StatusOK},
		{"another user", 4242, http.StatusForbidden},
		{"unknown peer", -1, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.uid == 4242 && self == 4242 {
				t.Fatal("the test's other uid is the test's own")
			}
			r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
			r = r.WithContext(context.WithValue(r.Context(), peerUIDKey{}, tt.uid))
			w := httptest.NewRecorder()
			ownerOnly(ok).ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			if tt.want == http.StatusForbidden && !strings.Contains(w.Body.String(), "serves root only") {
				t.Errorf("refusal %q does not say who may use the listener", w.Body)
			}
		})
	}
}

// The uid comes from the kernel's socket table: a real loopback
// connection from this process is attributed to this process's user.
func TestLoopbackPeer(t *testing.T) {
	var got int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got, _ = r.Context().Value(peerUIDKey{}).(int)
	}))
	srv.Config.ConnContext = loopbackPeer
	srv.Start()
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got != os.Geteuid() {
		t.Fatalf("peer uid %d, want this process's %d", got, os.Geteuid())
	}
}

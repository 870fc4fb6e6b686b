package diskspace

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/endpoints/request"
)

const mi = 1 << 20

// The guard turns on below MinFree and off only a tenth above it, and
// says so once per change.
func TestGuardTransitions(t *testing.T) {
	var free int64
	var said []string
	g := &Guard{Dir: "/data", MinFree: 100 * mi, measure: func(string) (int64, error) { return free, nil },
		Say: func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }}
	steps := []struct {
		free    int64
		low     bool
		newSays int
	}{
		{500 * mi, false, 0},
		{101 * mi, false, 0},
		{99 * mi, true, 1},
		{50 * mi, true, 0},
		{105 * mi, true, 0}, // above the minimum, within the tenth
		{110 * mi, false, 1},
		{99 * mi, true, 1},
	}
	for i, st := range steps {
		free = st.free
		before := len(said)
		if err := g.look(); err != nil {
			t.Fatal(err)
		}
		if low := g.Err() != nil; low != st.low {
			t.Fatalf("step %d (%d Mi free): low %v, want %v", i, st.free/mi, low, st.low)
		}
		if n := len(said) - before; n != st.newSays {
			t.Fatalf("step %d: %d lines said, want %d: %q", i, n, st.newSays, said[before:])
		}
	}
	if !strings.Contains(said[0], "/data has 99Mi free, below --min-free-disk 100Mi") {
		t.Errorf("terminal line %q does not say how much is free and the minimum", said[0])
	}
	if err := g.Err(); !strings.Contains(err.Error(), "writes are refused until space is freed") {
		t.Errorf("readyz reason %q", err)
	}
}

func TestAPIWriteFilter(t *testing.T) {
	g := &Guard{Dir: "/data", MinFree: 100 * mi, measure: func(string) (int64, error) { return mi, nil }}
	if err := g.look(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		info *request.RequestInfo
		want int
	}{
		{"create a ConfigMap", &request.RequestInfo{IsResourceRequest: true, Verb: "create", Resource: "configmaps"}, 507},
		{"patch a Deployment", &request.RequestInfo{IsResourceRequest: true, Verb: "patch", APIGroup: "apps", Resource: "deployments"}, 507},
		{"update pod status", &request.RequestInfo{IsResourceRequest: true, Verb: "update", Resource: "pods", Subresource: "status"}, 507},
		{"get", &request.RequestInfo{IsResourceRequest: true, Verb: "get", Resource: "configmaps"}, 200},
		{"list", &request.RequestInfo{IsResourceRequest: true, Verb: "list", Resource: "pods"}, 200},
		{"delete", &request.RequestInfo{IsResourceRequest: true, Verb: "delete", Resource: "configmaps"}, 200},
		{"renew a lease", &request.RequestInfo{IsResourceRequest: true, Verb: "update", APIGroup: "coordination.k8s.io", Resource: "leases"}, 200},
		{"token review", &request.RequestInfo{IsResourceRequest: true, Verb: "create", APIGroup: "authentication.k8s.io", Resource: "tokenreviews"}, 200},
		{"exec", &request.RequestInfo{IsResourceRequest: true, Verb: "create", Resource: "pods", Subresource: "exec"}, 200},
		{"health", &request.RequestInfo{IsResourceRequest: false, Verb: "get", Path: "/readyz"}, 200},
		{"no request info", nil, 200},
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/api/v1/x", nil)
			if tt.info != nil {
				r = r.WithContext(request.WithRequestInfo(r.Context(), tt.info))
			}
			w := httptest.NewRecorder()
			g.APIWriteFilter(next).ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			var st metav1.Status
			if tt.want == 507 && (json.Unmarshal(w.Body.Bytes(), &st) != nil || st.Reason != "InsufficientStorage" || st.Code != 507 || st.Kind != "Status" || st.APIVersion != "v1") {
				t.Errorf("refusal is not a Status with reason InsufficientStorage: %s", w.Body)
			}
		})
	}
}

func TestRegistryWriteFilter(t *testing.T) {
	var free int64 = mi
	g := &Guard{Dir: "/data", MinFree: 100 * mi, measure: func(string) (int64, error) { return free, nil }}
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) })
	for _, st := range []struct {
		free   int64
		method string
		want   int
	}{
		{mi, http.MethodPost, 507}, {mi, http.MethodPut, 507}, {mi, http.MethodPatch, 507},
		{mi, http.MethodGet, 202}, {mi, http.MethodHead, 202}, {mi, http.MethodDelete, 202},
		{200 * mi, http.MethodPost, 202},
	} {
		free = st.free
		if err := g.look(); err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		g.RegistryWriteFilter(next).ServeHTTP(w, httptest.NewRequest(st.method, "/v2/x/blobs/uploads/", nil))
		if w.Code != st.want {
			t.Errorf("%s with %d Mi free: %d, want %d (%s)", st.method, st.free/mi, w.Code, st.want, w.Body)
		}
	}
}

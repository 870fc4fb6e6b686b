package httpauth

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"

	"k8s.io/apiserver/pkg/authorization/authorizer"
)

func TestBasicToBearer(t *testing.T) {
	tests := []struct{ header, want string }{
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("anyone:tok3n")), "Bearer tok3n"},
		{"basic " + base64.StdEncoding.EncodeToString([]byte("u:a:b")), "Bearer a:b"},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("user-only:")), "Basic dXNlci1vbmx5Og=="},
		{"Basic !!!", "Basic !!!"},
		{"Bearer x", "Bearer x"},
		{"", ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		basicToBearer(r)
		if got := r.Header.Get("Authorization"); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.header, got, tt.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		a    authorizer.AttributesRecord
		want string
	}{
		{authorizer.AttributesRecord{Verb: "get", Path: "/metrics"}, `get the path "/metrics"`},
		{authorizer.AttributesRecord{Verb: "create", APIGroup: "serving.strata.dev", Resource: "functions", Subresource: "invoke",
			Name: "fn", Namespace: "team", ResourceRequest: true}, `create functions/invoke.serving.strata.dev "fn" in namespace team`},
		{authorizer.AttributesRecord{Verb: "list", APIGroup: "registry.strata.dev", Resource: "repositories", ResourceRequest: true},
			"list repositories.registry.strata.dev"},
	}
	for _, tt := range tests {
		if got := Describe(tt.a); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestVerb(t *testing.T) {
	for method, want := range map[string]string{"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete", "OPTIONS": "options"} {
		if got := Verb(method); got != want {
			t.Errorf("%s: %q, want %q", method, got, want)
		}
	}
}

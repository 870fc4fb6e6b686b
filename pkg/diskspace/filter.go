package diskspace

import (
	"encoding/json"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	"k8s.io/apiserver/pkg/endpoints/request"
)

// Requests that are writes by their verb but store nothing: reviews
// answered on the spot, streams, proxies and token requests. Leases are
// let through too: they rewrite one small key, and a control plane that
// cannot renew them would lose its nodes.
var (
	storesNothing = sets.New("tokenreviews", "subjectaccessreviews", "selfsubjectaccessreviews",
		"localsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews")
	streams = sets.New("exec", "attach", "portforward", "proxy", "token")
)

// APIWriteFilter refuses, while space is low, API requests that would
// store something, with 507 Insufficient Storage and the reason; reads,
// deletes and the requests above pass. It goes inside the API server's
// handler chain, where the request is authenticated and its RequestInfo
// known.
func (g *Guard) APIWriteFilter(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := g.Err()
		if err == nil || !storesSomething(r) {
			h.ServeHTTP(w, r)
			return
		}
		// With its kind and version, so clients (client-go, kubectl) decode
		// it and show the message rather than "unknown".
		status := &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status: metav1.StatusFailure, Code: http.StatusInsufficientStorage,
			Reason: metav1.StatusReason("InsufficientStorage"), Message: err.Error()}
		responsewriters.WriteRawJSON(http.StatusInsufficientStorage, status, w)
	})
}

func storesSomething(r *http.Request) bool {
	info, ok := request.RequestInfoFrom(r.Context())
	if !ok || !info.IsResourceRequest {
		return false
	}
	switch info.Verb {
	case "create", "update", "patch":
	default:
		return false
	}
	if info.APIGroup == "coordination.k8s.io" && info.Resource == "leases" {
		return false
	}
	return !storesNothing.Has(info.Resource) && !streams.Has(info.Subresource)
}

// RegistryWriteFilter refuses pushes while space is low, in the
// distribution API's error format; pulls and deletes pass.
func (g *Guard) RegistryWriteFilter(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := g.Err()
		if err == nil || r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodDelete {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInsufficientStorage)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": "UNSUPPORTED", "message": err.Error()}}})
	})
}

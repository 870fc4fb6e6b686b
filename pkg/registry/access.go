package registry

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Who may use the registry is RBAC on a resource that exists only for
// authorization, as OpenShift's registry does with image streams: verb get
// pulls, create pushes, delete deletes, on repositories.registry.strata.dev
// named by the repository path (resourceNames can pin one).
const (
	Group    = "registry.strata.dev"
	Resource = "repositories"
	// PullRole may pull any repository; nodes have it.
	PullRole = "strata:registry:pull"
	// PushRole may pull and push any repository.
	PushRole = "strata:registry:push"
)

// RBAC are the registry's roles, and the binding that lets every node pull
// with its own credentials.
func RBAC() []client.Object {
	labels := map[string]string{"app.kubernetes.io/managed-by": "strata"}
	role := func(name string, verbs ...string) *rbacv1.ClusterRole {
		return &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{Group}, Resources: []string{Resource}, Verbs: verbs}},
		}
	}
	return []client.Object{
		role(PullRole, "get", "list"),
		role(PushRole, "get", "list", "create", "delete"),
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "strata:nodes:registry-pull", Labels: labels},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: PullRole},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:nodes"}},
		},
	}
}

// attributes maps a distribution API request to what it asks of RBAC:
// /v2/ needs only an authenticated user; /v2/_catalog lists; everything
// under /v2/<repository>/ reads, writes or deletes that repository.
func attributes(r *http.Request, u user.Info) (authorizer.Attributes, bool) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v2/")
	if !ok || rest == "" {
		return nil, false
	}
	a := authorizer.AttributesRecord{User: u, APIGroup: Group, Resource: Resource, ResourceRequest: true}
	if rest == "_catalog" {
		a.Verb = "list"
		return a, true
	}
	a.Name = repository(rest)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		a.Verb = "get"
	case http.MethodDelete:
		a.Verb = "delete"
	default:
		a.Verb = "create"
	}
	return a, true
}

// repository is the name in /v2/<name>/(manifests|blobs|tags|referrers)/...;
// names have slashes, so the last of those words ends it.
func repository(rest string) string {
	parts := strings.Split(rest, "/")
	for i := len(parts) - 1; i > 0; i-- {
		switch parts[i] {
		case "manifests", "blobs", "tags", "referrers":
			return strings.Join(parts[:i], "/")
		}
	}
	return rest
}

// peerUIDKey carries the uid owning a loopback connection's client socket.
type peerUIDKey struct{}

// loopbackPeer records, once per connection, which user owns the socket
// at the other end: on loopback both ends are in this host's socket table,
// so the kernel says who connected (as SO_PEERCRED does for Unix sockets).
func loopbackPeer(ctx context.Context, c net.Conn) context.Context {
	uid := -1
	if s, err := netlink.SocketGet(c.RemoteAddr(), c.LocalAddr()); err == nil {
		uid = int(s.UID)
	}
	return context.WithValue(ctx, peerUIDKey{}, uid)
}

// ownerOnly is the loopback listener's handler: only root and the
// server's own user may use it, so other users of the host can neither
// push, delete nor read the cluster's images.
func ownerOnly(h http.Handler) http.Handler {
	self := os.Geteuid()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uid, _ := r.Context().Value(peerUIDKey{}).(int)
		if uid != 0 && uid != self {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"errors":[{"code":"DENIED","message":"the registry's loopback listener serves root only (this connection is uid %d): run the client as root, or use the TLS listener with Kubernetes credentials"}]}`, uid)
			return
		}
		h.ServeHTTP(w, r)
	})
}

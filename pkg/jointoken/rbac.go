package jointoken

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RBAC are the bindings of the kubelet's TLS bootstrap, as kubeadm makes
// them: a join token's holder may ask for a node client certificate (and
// the controller manager's csrapproving controller approves it, csrsigning
// signs it), and a node may renew its own. The ClusterRoles are upstream's
// bootstrap policy.
func RBAC() []*rbacv1.ClusterRoleBinding {
	bind := func(name, role, group string) *rbacv1.ClusterRoleBinding {
		return &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "strata"}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: group}},
		}
	}
	return []*rbacv1.ClusterRoleBinding{
		bind("strata:agents:node-bootstrapper", "system:node-bootstrapper", AgentGroup),
		bind("strata:agents:approve-node-client", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", AgentGroup),
		bind("strata:nodes:approve-renewal", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", "system:nodes"),
	}
}

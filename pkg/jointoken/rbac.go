package jointoken

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// RBAC are the bindings of the kubelet's TLS bootstrap, as kubeadm makes
// them: a join token's holder may ask for a node client certificate (and
// the controller manager's csrapproving controller approves it, csrsigning
// signs it), and a node may renew its own. The ClusterRoles are upstream's
// bootstrap policy. Nodes may also read the agent configuration, and
// their kube-proxy runs with the node's own credentials (upstream's
// system:node-proxier role: reads of Services, EndpointSlices, Nodes), so
// an agent holds no other credential.
func RBAC() []client.Object {
	bind := func(name, role, group string) *rbacv1.ClusterRoleBinding {
		return &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "strata"}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: group}},
		}
	}
	labels := map[string]string{"app.kubernetes.io/managed-by": "strata"}
	return []client.Object{
		bind("strata:agents:node-bootstrapper", "system:node-bootstrapper", AgentGroup),
		bind("strata:agents:approve-node-client", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", AgentGroup),
		bind("strata:nodes:approve-renewal", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", NodesGroup),
		bind("strata:nodes:node-proxier", "system:node-proxier", NodesGroup),
		&rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: AgentConfigName, Namespace: metav1.NamespaceSystem, Labels: labels},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"},
				ResourceNames: []string{AgentConfigName}, Verbs: []string{"get"}}},
		},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: AgentConfigName, Namespace: metav1.NamespaceSystem, Labels: labels},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: AgentConfigName},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: NodesGroup}},
		},
	}
}

// NodesGroup is every node's group (the Node authorizer's).
const NodesGroup = "system:nodes"

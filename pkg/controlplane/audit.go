package controlplane

import (
	"github.com/strata-dev/strata/pkg/fileutil"
)

// auditPolicy is what the API server's audit log records. Nothing from
// the contents of Secrets, ConfigMaps, tokens or CSRs (metadata only);
// full requests and responses for the changes a security review asks
// about (RBAC, admission, image and network policy); metadata for every
// other change and for people's reads; nothing for the control plane's
// own reads, health checks, leases and events, which would drown the rest.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version", "/metrics", "/openapi*", "/api", "/apis", "/api/*", "/apis/*"]
- level: None
  resources:
  - {group: "coordination.k8s.io", resources: ["leases"]}
  - {group: "", resources: ["events"]}
  - {group: "events.k8s.io", resources: ["events"]}
- level: None
  verbs: ["get", "list", "watch"]
  userGroups: ["system:nodes", "system:serviceaccounts:kube-system"]
- level: None
  verbs: ["get", "list", "watch"]
  users: ["system:kube-controller-manager", "system:kube-scheduler", "system:kube-proxy", "system:apiserver", "system:strata"]
- level: Metadata
  resources:
  - {group: "", resources: ["secrets", "configmaps", "serviceaccounts/token"]}
  - {group: "authentication.k8s.io", resources: ["tokenreviews", "selfsubjectreviews"]}
  - {group: "certificates.k8s.io", resources: ["certificatesigningrequests", "podcertificaterequests"]}
- level: RequestResponse
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
  resources:
  - {group: "rbac.authorization.k8s.io"}
  - {group: "admissionregistration.k8s.io"}
  - {group: "security.strata.dev"}
  - {group: "networking.k8s.io", resources: ["networkpolicies"]}
  - {group: "policy"}
- level: Metadata
`

// authenticationConfig lets anonymous requests reach the health endpoints
// only, as load balancers and probes expect; everything else needs a
// certificate or a token. (RBAC's system:public-info-viewer already lets
// system:unauthenticated read them.)
const authenticationConfig = `apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
anonymous:
  enabled: true
  conditions:
  - path: /livez
  - path: /readyz
  - path: /healthz
`

// writeAuthenticationConfig writes it under the data dir and returns its
// path.
func (c *Config) writeAuthenticationConfig() (string, error) {
	file := c.Layout.AuthnConfig()
	return file, fileutil.WriteAtomic(file, []byte(authenticationConfig), 0o644)
}

// writeAuditPolicy writes the policy under the data dir and returns its
// path.
func (c *Config) writeAuditPolicy() (string, error) {
	file := c.Layout.AuditPolicy()
	return file, fileutil.WriteAtomic(file, []byte(auditPolicy), 0o644)
}

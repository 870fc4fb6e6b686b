package controlplane

import (
	"fmt"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/strata-dev/strata/pkg/fileutil"
)

// PodSecurityLevels are the Pod Security Standards levels, loosest last.
var PodSecurityLevels = []string{"restricted", "baseline", "privileged"}

// ExemptNamespaces are never subject to the cluster default: the system's own.
var ExemptNamespaces = []string{"kube-system", "kube-public", "kube-node-lease", "strata-system"}

// ValidatePodSecurityLevel names the accepted values in its error.
func ValidatePodSecurityLevel(level string) error {
	for _, l := range PodSecurityLevels {
		if level == l {
			return nil
		}
	}
	return fmt.Errorf("--pod-security %q is not a Pod Security level: use one of %s", level, strings.Join(PodSecurityLevels, ", "))
}

// writeAdmissionConfig writes kube-apiserver's AdmissionConfiguration. The
// PodSecurity plugin's cluster defaults make every namespace without its
// own pod-security.kubernetes.io labels enforce the chosen level; a
// namespace's labels still override it, as upstream documents.
func (c *Config) writeAdmissionConfig() (string, error) {
	level := c.PodSecurityDefault
	if level == "" {
		level = "restricted"
	}
	if err := ValidatePodSecurityLevel(level); err != nil {
		return "", err
	}
	var ns strings.Builder
	for _, n := range ExemptNamespaces {
		fmt.Fprintf(&ns, "\n      - %s", n)
	}
	content := fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults:
      enforce: %[1]q
      enforce-version: "latest"
      audit: %[1]q
      audit-version: "latest"
      warn: %[1]q
      warn-version: "latest"
    exemptions:
      usernames: []
      runtimeClasses: []
      namespaces:%[2]s
`, level, ns.String())
	if c.WebhookHost != "" {
		kubeconfig, err := c.writeWebhookClientKubeconfig()
		if err != nil {
			return "", err
		}
		for _, plugin := range []string{"ValidatingAdmissionWebhook", "MutatingAdmissionWebhook"} {
			content += fmt.Sprintf(`- name: %s
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %q
`, plugin, kubeconfig)
		}
	}
	file := c.Layout.AdmissionConfig()
	return file, fileutil.WriteAtomic(file, []byte(content), 0o644)
}

// writeWebhookClientKubeconfig writes the credentials the API server
// presents to webhooks, one user per webhook host (upstream's
// WebhookAdmissionConfiguration): Strata's webhooks get its client
// certificate, other webhooks nothing.
func (c *Config) writeWebhookClientKubeconfig() (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.AuthInfos[c.WebhookHost] = &clientcmdapi.AuthInfo{ClientCertificate: c.certs.webhookClient.CertFile, ClientKey: c.certs.webhookClient.KeyFile}
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return "", fmt.Errorf("webhook client kubeconfig: %w", err)
	}
	file := c.kubeconfigPath("apiserver-webhook-client")
	return file, fileutil.WriteAtomic(file, data, 0o600)
}

package admission

import (
	"crypto/x509"
	"encoding/pem"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func TestInstallManifests(t *testing.T) {
	objs, err := InstallManifests(InstallOptions{Namespace: "sec", Image: "r.io/strata:v1", Args: []string{"--unmatched-images=warn"}})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	var secret *corev1.Secret
	var validating *admissionregistrationv1.ValidatingWebhookConfiguration
	var deploy *appsv1.Deployment
	for _, o := range objs {
		kind := o.GetObjectKind().GroupVersionKind().Kind
		if kind == "" {
			t.Fatalf("object %T has no kind: kubectl apply would refuse it", o)
		}
		if _, err := yaml.Marshal(o); err != nil {
			t.Fatal(err)
		}
		kinds[kind]++
		switch v := o.(type) {
		case *corev1.Secret:
			secret = v
		case *admissionregistrationv1.ValidatingWebhookConfiguration:
			validating = v
		case *appsv1.Deployment:
			deploy = v
		}
	}
	for _, k := range []string{"CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Secret", "Service", "Deployment", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		if kinds[k] == 0 {
			t.Errorf("no %s in the manifests", k)
		}
	}
	if got := deploy.Spec.Template.Spec.Containers[0].Args; got[len(got)-1] != "--unmatched-images=warn" {
		t.Errorf("serve args not passed: %v", got)
	}
	// The CA in the webhook configuration must validate the Secret's
	// serving certificate for the Service's DNS name.
	for _, w := range validating.Webhooks {
		if s := w.ClientConfig.Service; s == nil || s.Namespace != "sec" || s.Name != "strata-webhook" {
			t.Fatalf("webhook %s does not point at the Service: %+v", w.Name, w.ClientConfig)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(validating.Webhooks[0].ClientConfig.CABundle) {
		t.Fatal("caBundle is not PEM")
	}
	block, _ := pem.Decode(secret.Data["tls.crt"])
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "strata-webhook.sec.svc"}); err != nil {
		t.Fatalf("serving certificate does not verify for the Service name: %v", err)
	}
}

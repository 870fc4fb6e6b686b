package admission

import (
	"fmt"
	"os"
	"path/filepath"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/pkg/admission/imagepolicy"
	"github.com/strata-dev/strata/pkg/controlplane/pki"
	"github.com/strata-dev/strata/pkg/crds"
)

// InstallOptions describe an installation into an existing cluster.
type InstallOptions struct {
	Namespace string
	// Image runs `strata webhook serve`.
	Image string
	// Args are extra flags for `strata webhook serve`.
	Args []string
}

// InstallManifests returns every object needed to run image signature
// admission in an existing cluster: the CRDs, a namespace, RBAC, a TLS
// Secret with a freshly generated CA and serving certificate, the webhook
// Deployment and Service, and the webhook configurations pointing at it.
func InstallManifests(o InstallOptions) ([]runtime.Object, error) {
	const name = "strata-webhook"
	labels := map[string]string{"app.kubernetes.io/name": name}
	meta := metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: labels}
	host := fmt.Sprintf("%s.%s.svc", name, o.Namespace)

	caPEM, certPEM, keyPEM, err := servingCert(host)
	if err != nil {
		return nil, err
	}
	var objs []runtime.Object
	defs, err := crds.All()
	if err != nil {
		return nil, err
	}
	for _, c := range defs {
		c.TypeMeta = metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"}
		objs = append(objs, c)
	}
	objs = append(objs,
		&corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"), ObjectMeta: metav1.ObjectMeta{Name: o.Namespace,
			// Its own pods must start even if the webhook is down.
			Labels: map[string]string{imagepolicy.ExemptLabel: "exempt"}}},
		&corev1.ServiceAccount{TypeMeta: typeMeta("v1", "ServiceAccount"), ObjectMeta: meta},
		&rbacv1.ClusterRole{TypeMeta: typeMeta("rbac.authorization.k8s.io/v1", "ClusterRole"), ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"security.strata.dev"}, Resources: []string{"clusterimagepolicies"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{"security.strata.dev"}, Resources: []string{"clusterimagepolicies/status"}, Verbs: []string{"get", "update", "patch"}},
				// Keys referenced by policies; read one at a time, never listed.
				{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}},
			}},
		&rbacv1.ClusterRoleBinding{TypeMeta: typeMeta("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"), ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: o.Namespace}}},
		&corev1.Secret{TypeMeta: typeMeta("v1", "Secret"), ObjectMeta: metav1.ObjectMeta{Name: name + "-tls", Namespace: o.Namespace, Labels: labels},
			Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM, "ca.crt": caPEM}},
		&corev1.Service{TypeMeta: typeMeta("v1", "Service"), ObjectMeta: meta, Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(9443)}},
		}},
		&appsv1.Deployment{TypeMeta: typeMeta("apps/v1", "Deployment"), ObjectMeta: meta, Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: name,
					SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
					Containers: []corev1.Container{{
						Name:  "webhook",
						Image: o.Image,
						Args:  append([]string{"webhook", "serve", "--cert-dir", "/tls", "--port", "9443"}, o.Args...),
						Ports: []corev1.ContainerPort{{Name: "https", ContainerPort: 9443}},
						SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
							Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
						VolumeMounts: []corev1.VolumeMount{{Name: "tls", MountPath: "/tls", ReadOnly: true}},
					}},
					Volumes: []corev1.Volume{{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name + "-tls"}}}},
				},
			},
		}},
	)
	mutating, validating := imagepolicy.Configurations(func(path string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{
			Service:  &admissionregistrationv1.ServiceReference{Namespace: o.Namespace, Name: name, Path: ptr.To(path), Port: ptr.To[int32](443)},
			CABundle: caPEM,
		}
	})
	mutating.TypeMeta = typeMeta("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
	validating.TypeMeta = typeMeta("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration")
	return append(objs, mutating, validating), nil
}

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

// servingCert makes a CA and a serving certificate for host, the way the
// server's PKI does, and returns them as PEM.
func servingCert(host string) (caPEM, certPEM, keyPEM []byte, err error) {
	dir, err := os.MkdirTemp("", "strata-webhook-pki-")
	if err != nil {
		return nil, nil, nil, err
	}
	defer os.RemoveAll(dir)
	ca, err := pki.LoadOrCreateCA(dir, "ca", "strata-webhook-ca")
	if err != nil {
		return nil, nil, nil, err
	}
	p, err := ca.Issue(dir, pki.Cert{Name: "tls", CommonName: host, DNSNames: []string{host}, Server: true})
	if err != nil {
		return nil, nil, nil, err
	}
	if caPEM, err = os.ReadFile(filepath.Join(dir, "ca.crt")); err != nil {
		return nil, nil, nil, err
	}
	if certPEM, err = os.ReadFile(p.CertFile); err != nil {
		return nil, nil, nil, err
	}
	keyPEM, err = os.ReadFile(p.KeyFile)
	return caPEM, certPEM, keyPEM, err
}

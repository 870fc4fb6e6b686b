package extensions

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	securityv1 "github.com/strata-dev/strata/api/security/v1alpha1"
	"github.com/strata-dev/strata/pkg/admission"
	"github.com/strata-dev/strata/pkg/apply"
)

// SystemNamespace holds Strata's own objects.
const SystemNamespace = "strata-system"

// Names of what the system policy creates.
const (
	signingKeySecret    = "image-signing-key"
	systemImagePolicy   = "strata-system-images"
	signingKeyPublicKey = "cosign.pub"
)

// runAdmission serves the admission webhooks (image policy, device
// classes) and the policy controller, and registers the webhooks with the
// API server once they answer. It is ready when admission is enforced, so
// nothing that requires it (the admin kubeconfig) slips past it.
func (c *Config) runAdmission(ctx context.Context, ready func()) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	// The first write of a new custom resource is slow: do it while the
	// webhook starts. Until the policy exists, Strata's images match no
	// policy and are denied, never admitted unchecked.
	systemPolicy := make(chan error, 1)
	go func() { systemPolicy <- c.ensureSystemPolicy(ctx, cl) }()

	// controller-runtime keeps one process-wide logger.
	ctrl.SetLogger(klog.NewKlogr().WithName("image-policy"))
	w := c.Webhook
	mgr, err := admission.NewManager(c.REST, webhook.Options{
		Host: w.Host, Port: w.Port, CertDir: w.CertDir, CertName: w.CertName, KeyName: w.KeyName,
		ClientCAName: w.ClientCAName,
		// HTTP/1.1: a stopping HTTP/2 server waits a second for its
		// client's answer to GOAWAY, and the API server talks either.
		TLSOpts: []func(*tls.Config){func(t *tls.Config) {
			t.NextProtos = []string{"http/1.1"}
			if w.ClientCommonName != "" {
				t.VerifyPeerCertificate = requireCommonName(w.ClientCommonName)
			}
		}},
	}, c.ImagePolicy)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- mgr.Start(ctx) }()
	// Register only once the webhook serves from a synced cache: the
	// webhooks fail closed, so registering early would refuse pods.
	err = admission.WaitServing(ctx, mgr, errc)
	if err == nil {
		klog.InfoS("Image policy webhook serving")
		err = admission.RegisterWebhooks(ctx, cl, w.ClientConfig)
	}
	if err == nil {
		err = <-systemPolicy
	}
	if err != nil {
		cancel()
		<-errc
		return err
	}
	c.say("image signature policy enforced (unmatched images: %s)", c.ImagePolicy.Unmatched)
	ready()
	if err := <-errc; err != nil {
		return fmt.Errorf("image policy manager: %w", err)
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("image policy manager stopped")
}

// ensureSystemPolicy publishes the platform's public key and the policy
// that covers its own images. The key Secret always follows the key;
// the policy is created once, so an administrator's edits stay.
func (c *Config) ensureSystemPolicy(ctx context.Context, cl client.Client) error {
	p := c.SystemPolicy
	if p == nil {
		return nil
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: SystemNamespace}}
	if err := apply.CreateOnce(ctx, cl, ns); err != nil {
		return err
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: SystemNamespace, Name: signingKeySecret},
		Data: map[string][]byte{signingKeyPublicKey: p.Key()}}
	if err := apply.Apply(ctx, cl, secret); err != nil {
		return fmt.Errorf("publish signing key: %w", err)
	}
	policy := &securityv1.ClusterImagePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: systemImagePolicy},
		Spec: securityv1.ClusterImagePolicySpec{
			Authorities: []securityv1.Authority{{
				Name: "strata-server",
				Key: securityv1.KeySource{SecretRef: &securityv1.SecretKeyReference{
					Namespace: SystemNamespace, Name: signingKeySecret, Key: signingKeyPublicKey,
				}},
			}},
			Mode: securityv1.ModeEnforce,
		},
	}
	for _, g := range p.Globs {
		policy.Spec.Images = append(policy.Spec.Images, securityv1.ImagePattern{Glob: g})
	}
	return apply.CreateOnce(ctx, cl, policy)
}

// requireCommonName accepts only a verified client certificate issued to
// name: the CA signs other clients too (nodes, users).
func requireCommonName(name string) func([][]byte, [][]*x509.Certificate) error {
	return func(_ [][]byte, chains [][]*x509.Certificate) error {
		if len(chains) == 0 || len(chains[0]) == 0 {
			return fmt.Errorf("no verified client certificate: only the API server may call these webhooks")
		}
		if cn := chains[0][0].Subject.CommonName; cn != name {
			return fmt.Errorf("client certificate %q is not the API server's (%q)", cn, name)
		}
		return nil
	}
}

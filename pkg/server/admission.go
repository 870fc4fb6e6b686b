package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sigstore/sigstore/pkg/signature"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	securityv1 "github.com/strata-dev/strata/api/security/v1alpha1"
	"github.com/strata-dev/strata/pkg/admission"
	"github.com/strata-dev/strata/pkg/admission/imagepolicy"
	"github.com/strata-dev/strata/pkg/apply"
	"github.com/strata-dev/strata/pkg/fileutil"
	"github.com/strata-dev/strata/pkg/layout"
	"github.com/strata-dev/strata/pkg/signing"
)

// SystemNamespace holds Strata's own objects.
const SystemNamespace = "strata-system"

// Names of what the server creates for image verification.
const (
	signingKeySecret    = "image-signing-key"
	systemImagePolicy   = "strata-system-images"
	signingKeyPublicKey = "cosign.pub"
)

// ensureSigningKey loads the server's signing key, creating it on first
// start. The private key is encrypted like cosign's, with a random password
// kept beside it (mode 0600) so that `strata image sign --cluster-key` and
// cosign (COSIGN_PASSWORD=$(cat cosign.password)) can both use it.
// systemKey is the server's image signing key.
type systemKey struct {
	signer    signature.Signer
	publicPEM []byte
}

func ensureSigningKey(l layout.Layout) (*systemKey, error) {
	keyFile, pubFile, pwFile := l.SigningKey()
	if !fileutil.Exists(keyFile) {
		if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		raw := make([]byte, 24)
		if _, err := rand.Read(raw); err != nil {
			return nil, fmt.Errorf("signing key password: %w", err)
		}
		if err := fileutil.WriteAtomic(pwFile, []byte(hex.EncodeToString(raw)), 0o600); err != nil {
			return nil, err
		}
		kp, err := signing.GenerateKeyPair([]byte(hex.EncodeToString(raw)))
		if err != nil {
			return nil, err
		}
		if _, _, err := signing.WriteKeyPair(kp, l.SigningKeyPrefix(), true); err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
	}
	password, err := signing.ReadPassword(pwFile)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	signer, err := signing.LoadPrivateKey(keyFile, password)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	pub, err := os.ReadFile(pubFile)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return &systemKey{signer: signer, publicPEM: pub}, nil
}

// runAdmission serves the admission webhooks (image policy, device
// classes) and the policy controller, and registers the webhooks with the
// API server once they answer. It is ready when admission is enforced, so
// nothing that requires it (the admin kubeconfig) slips past it.
func (s *server) runAdmission(ctx context.Context, ready func()) error {
	c, err := s.apiClient()
	if err != nil {
		return err
	}
	rc, err := s.supervisorREST()
	if err != nil {
		return err
	}
	// The first write of a new custom resource is slow (~2 s here): do it
	// while the webhook starts. Until the policy exists, Strata's images
	// match no policy and are denied, never admitted unchecked.
	systemPolicy := make(chan error, 1)
	go func() { systemPolicy <- ensureSystemPolicy(ctx, c, s.cfg.RegistryPort, s.key.publicPEM) }()

	// controller-runtime keeps one process-wide logger.
	ctrl.SetLogger(klog.NewKlogr().WithName("image-policy"))
	unmatched, _ := imagepolicy.ParseUnmatched(s.cfg.UnmatchedImages) // checked by Validate
	opts := imagepolicy.DefaultOptions()
	opts.Unmatched, opts.Timeout, opts.CacheTTL = unmatched, s.cfg.ImageVerifyTimeout, s.cfg.ImageCacheTTL
	cert := s.cp.WebhookServingCert()
	mgr, err := admission.NewManager(rc, webhook.Options{
		Host:     "127.0.0.1",
		Port:     s.cfg.WebhookPort,
		CertDir:  filepath.Dir(cert.CertFile),
		CertName: filepath.Base(cert.CertFile),
		KeyName:  filepath.Base(cert.KeyFile),
		// HTTP/1.1: a stopping HTTP/2 server waits a second for its
		// client's answer to GOAWAY, and the API server talks either.
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}, opts)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- mgr.Start(ctx) }()
	stopped := func() error {
		if err := <-errc; err != nil {
			return fmt.Errorf("image policy manager: %w", err)
		}
		return nil
	}
	// Register only once the webhook serves from a synced cache: the
	// webhooks fail closed, so registering early would refuse pods.
	if err := admission.WaitServing(ctx, mgr, errc); err != nil {
		cancel()
		<-errc
		return err
	}
	klog.InfoS("Image policy webhook serving")
	caPEM, err := os.ReadFile(s.cp.CAFile())
	if err == nil {
		err = admission.RegisterWebhooks(ctx, c, func(path string) admissionregistrationv1.WebhookClientConfig {
			url := fmt.Sprintf("https://127.0.0.1:%d%s", s.cfg.WebhookPort, path)
			return admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM}
		})
	}
	if err == nil {
		err = <-systemPolicy
	}
	if err != nil {
		cancel()
		<-errc
		return err
	}
	s.say("image signature policy enforced (unmatched images: %s)", s.cfg.UnmatchedImages)
	ready()
	if err := stopped(); err != nil || ctx.Err() != nil {
		return err
	}
	return errors.New("image policy manager stopped")
}

// ensureSystemPolicy publishes the server's public key and the policy
// that covers Strata's own images. The key Secret always follows the key on
// disk; the policy is created once, so an administrator's edits stay.
func ensureSystemPolicy(ctx context.Context, c client.Client, registryPort int, publicKey []byte) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: SystemNamespace}}
	if err := apply.CreateOnce(ctx, c, ns); err != nil {
		return err
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: SystemNamespace, Name: signingKeySecret},
		Data: map[string][]byte{signingKeyPublicKey: publicKey}}
	if err := apply.Apply(ctx, c, secret); err != nil {
		return fmt.Errorf("publish signing key: %w", err)
	}
	policy := &securityv1.ClusterImagePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: systemImagePolicy},
		Spec: securityv1.ClusterImagePolicySpec{
			Images: []securityv1.ImagePattern{
				{Glob: fmt.Sprintf("localhost:%d/strata/**", registryPort)},
				{Glob: fmt.Sprintf("127.0.0.1:%d/strata/**", registryPort)},
			},
			Authorities: []securityv1.Authority{{
				Name: "strata-server",
				Key: securityv1.KeySource{SecretRef: &securityv1.SecretKeyReference{
					Namespace: SystemNamespace, Name: signingKeySecret, Key: signingKeyPublicKey,
				}},
			}},
			Mode: securityv1.ModeEnforce,
		},
	}
	return apply.CreateOnce(ctx, c, policy)
}

package imagepolicy

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature"
	"k8s.io/apimachinery/pkg/util/validation/field"

	securityv1 "github.com/strata-dev/strata/api/security/v1alpha1"
	"github.com/strata-dev/strata/pkg/signing"
)

// Policy is a ClusterImagePolicy compiled for admission: globs as regexps
// and keys as verifiers.
type Policy struct {
	Name string
	Mode securityv1.PolicyMode

	globs     []*regexp.Regexp
	verifiers []signature.Verifier
	// keyID identifies the set of trusted keys, so cached verdicts are
	// never reused for another set (adding or removing a key takes effect
	// at once).
	keyID string
	// problem says what did not load (for the Ready condition); reason is
	// that condition's reason.
	problem error
	reason  string
	// broken is set when no key loaded at all. Images the policy covers
	// then fail it: a policy whose keys went missing must not admit
	// anything. With some keys loaded, the policy verifies with those.
	broken bool
	// usesSecrets is true when a key comes from a Secret, which can change
	// without the policy changing.
	usesSecrets bool
}

// Matches reports whether the policy covers the repository (registry/path,
// normalised, without tag or digest).
func (p *Policy) Matches(repo string) bool {
	for _, g := range p.globs {
		if g.MatchString(repo) {
			return true
		}
	}
	return false
}

// Problem returns what did not load and the Ready condition's reason for
// it, or nil when the whole policy loaded.
func (p *Policy) Problem() (reason string, err error) { return p.reason, p.problem }

// SecretKeyReader reads the PEM a SecretKeyReference points at.
type SecretKeyReader interface {
	SecretKey(ctx context.Context, ref securityv1.SecretKeyReference) ([]byte, error)
}

// ValidateSpec checks what can be checked without the cluster: globs and
// inline keys. The messages carry the field path, as CRD validation's do.
func ValidateSpec(spec *securityv1.ClusterImagePolicySpec) field.ErrorList {
	var errs field.ErrorList
	base := field.NewPath("spec")
	for i, img := range spec.Images {
		if _, err := compileGlob(img.Glob); err != nil {
			errs = append(errs, field.Invalid(base.Child("images").Index(i).Child("glob"), img.Glob, err.Error()))
		}
	}
	for i, a := range spec.Authorities {
		p := base.Child("authorities").Index(i).Child("key")
		switch {
		case a.Key.Data != "" && a.Key.SecretRef != nil:
			errs = append(errs, field.Invalid(p, "data and secretRef", "set exactly one of data (an inline PEM public key) and secretRef"))
		case a.Key.Data == "" && a.Key.SecretRef == nil:
			errs = append(errs, field.Required(p, "set data (an inline PEM public key) or secretRef"))
		case a.Key.Data != "":
			if _, err := signing.DecodePublicKey([]byte(a.Key.Data)); err != nil {
				errs = append(errs, field.Invalid(p.Child("data"), "<PEM>", keyHint(err)))
			}
		}
	}
	if spec.Mode != "" && spec.Mode != securityv1.ModeEnforce && spec.Mode != securityv1.ModeWarn {
		errs = append(errs, field.NotSupported(base.Child("mode"), spec.Mode, []string{string(securityv1.ModeEnforce), string(securityv1.ModeWarn)}))
	}
	return errs
}

func keyHint(err error) string {
	return fmt.Sprintf("%v: paste the public key (cosign.pub, starting with -----BEGIN PUBLIC KEY-----), not the private key", err)
}

// Compile builds a Policy. Spec errors (bad globs or inline keys, which
// the webhook normally refuses) and keys that cannot be read both yield a
// broken policy rather than none, so the images it names stay guarded.
func Compile(ctx context.Context, cip *securityv1.ClusterImagePolicy, secrets SecretKeyReader) *Policy {
	p := &Policy{Name: cip.Name, Mode: cip.Spec.Mode}
	if p.Mode == "" {
		p.Mode = securityv1.ModeEnforce
	}
	for _, img := range cip.Spec.Images {
		g, err := compileGlob(img.Glob)
		if err != nil {
			// Keep matching what can be matched; a literal prefix of a bad
			// glob is no basis for guessing, so the bad one is dropped.
			p.fail(securityv1.ReasonInvalidGlob, err)
			continue
		}
		p.globs = append(p.globs, g)
	}
	var ids []string
	for i, a := range cip.Spec.Authorities {
		label := a.Name
		if label == "" {
			label = fmt.Sprintf("authorities[%d]", i)
		}
		pem := []byte(a.Key.Data)
		if a.Key.SecretRef != nil {
			p.usesSecrets = true
			data, err := secrets.SecretKey(ctx, *a.Key.SecretRef)
			if err != nil {
				p.fail(securityv1.ReasonKeyNotFound, fmt.Errorf("authority %s: %w", label, err))
				continue
			}
			pem = data
		}
		pub, err := signing.DecodePublicKey(pem)
		if err != nil {
			p.fail(securityv1.ReasonInvalidKey, fmt.Errorf("authority %s: %s", label, keyHint(err)))
			continue
		}
		vs, err := signing.VerifiersFromPublicKeys([]crypto.PublicKey{pub})
		if err != nil {
			p.fail(securityv1.ReasonInvalidKey, fmt.Errorf("authority %s: %w", label, err))
			continue
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			p.fail(securityv1.ReasonInvalidKey, fmt.Errorf("authority %s: %w", label, err))
			continue
		}
		sum := sha256.Sum256(der)
		ids = append(ids, hex.EncodeToString(sum[:]))
		p.verifiers = append(p.verifiers, vs...)
	}
	slices.Sort(ids)
	p.keyID = strings.Join(ids, ",")
	p.broken = len(p.verifiers) == 0
	return p
}

func (p *Policy) fail(reason string, err error) {
	if p.problem == nil {
		p.reason, p.problem = reason, err
		return
	}
	p.problem = fmt.Errorf("%w; %w", p.problem, err)
}

// Usable reports whether at least one key loaded.
func (p *Policy) Usable() bool { return !p.broken }

// UsesSecrets reports whether a key comes from a Secret.
func (p *Policy) UsesSecrets() bool { return p.usesSecrets }

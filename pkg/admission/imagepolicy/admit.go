package imagepolicy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	securityv1 "github.com/strata-dev/strata/api/security/v1alpha1"
	"github.com/strata-dev/strata/pkg/signing"
)

// Unmatched is what happens to an image that no policy covers.
type Unmatched string

const (
	UnmatchedDeny  Unmatched = "deny"
	UnmatchedWarn  Unmatched = "warn"
	UnmatchedAllow Unmatched = "allow"
)

// ParseUnmatched checks a flag value.
func ParseUnmatched(s string) (Unmatched, error) {
	switch u := Unmatched(s); u {
	case UnmatchedDeny, UnmatchedWarn, UnmatchedAllow:
		return u, nil
	}
	return "", fmt.Errorf("unmatched-images %q: use deny, warn or allow", s)
}

// PolicySource lists the current policies, compiled.
type PolicySource interface {
	Policies(ctx context.Context) ([]*Policy, error)
}

// Admitter decides on the images of pods and pod templates. Its Mutator
// pins tags to digests; its Validator verifies signatures. Both are needed:
// the validator sees the object after every mutating webhook ran, so what
// it verified is what runs.
type Admitter struct {
	Policies  PolicySource
	Verifier  *Verifier
	Unmatched Unmatched
	// Timeout bounds the registry work of one request. It must stay below
	// the webhook's timeoutSeconds so that a slow registry gives our
	// message, not the API server's generic timeout.
	Timeout time.Duration
}

// Mutator returns the mutating handler.
func (a *Admitter) Mutator() admission.Handler { return admission.HandlerFunc(a.mutate) }

// Validator returns the validating handler.
func (a *Admitter) Validator() admission.Handler { return admission.HandlerFunc(a.validate) }

func (a *Admitter) mutate(ctx context.Context, req admission.Request) admission.Response {
	images, policies, resp := a.prepare(ctx, req)
	if resp != nil {
		return *resp
	}
	ctx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	var patches []jsonpatch.JsonPatchOperation
	var denials []string
	for _, img := range images {
		ref, err := name.ParseReference(img.Image)
		if err != nil {
			continue // the validator explains it
		}
		if _, pinned := ref.(name.Digest); pinned {
			continue
		}
		matched := matching(policies, ref.Context().Name())
		if len(matched) == 0 {
			continue
		}
		d, err := a.Verifier.Resolve(ctx, ref)
		if err != nil {
			err = a.deadline(ctx, err)
			if p := firstEnforcing(matched); p != nil {
				denials = append(denials, fmt.Sprintf("%s: cannot resolve %s to a digest: %v; ClusterImagePolicy %q fails closed, so the image is denied until this works",
					img.Field, img.Image, err, p.Name))
			}
			continue
		}
		patches = append(patches, jsonpatch.NewOperation("replace", img.Path, d.String()))
	}
	if len(denials) > 0 {
		return admission.Denied(strings.Join(denials, "; "))
	}
	if len(patches) == 0 {
		return admission.Allowed("")
	}
	return admission.Patched("image tags pinned to the digests that were verified", patches...)
}

func (a *Admitter) validate(ctx context.Context, req admission.Request) admission.Response {
	images, policies, resp := a.prepare(ctx, req)
	if resp != nil {
		return *resp
	}
	ctx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	var denials, warnings []string
	for _, img := range images {
		d, w := a.check(ctx, img, policies)
		denials = append(denials, d...)
		warnings = append(warnings, w...)
	}
	if len(denials) > 0 {
		return admission.Denied(strings.Join(denials, "; ")).WithWarnings(warnings...)
	}
	return admission.Allowed("").WithWarnings(warnings...)
}

// check returns the denials and warnings for one image.
func (a *Admitter) check(ctx context.Context, img containerImage, policies []*Policy) (denials, warnings []string) {
	ref, err := name.ParseReference(img.Image)
	if err != nil {
		return []string{fmt.Sprintf("%s: %q is not a valid image reference: %v (use e.g. registry.example.com/app:v1)", img.Field, img.Image, err)}, nil
	}
	repo := ref.Context().Name()
	matched := matching(policies, repo)
	if len(matched) == 0 {
		switch a.Unmatched {
		case UnmatchedDeny:
			return []string{fmt.Sprintf("%s: image %s matches no ClusterImagePolicy and this cluster denies unmatched images; add a ClusterImagePolicy whose spec.images cover %s and sign the image with one of its keys (strata image sign --key cosign.key %s)",
				img.Field, img.Image, repo, img.Image)}, nil
		case UnmatchedWarn:
			return nil, []string{fmt.Sprintf("image %s matches no ClusterImagePolicy; it is admitted unverified", img.Image)}
		}
		return nil, nil
	}
	d, resolveErr := a.Verifier.Resolve(ctx, ref)
	for _, p := range matched {
		err := resolveErr
		if err == nil {
			err = a.Verifier.Verify(ctx, d, p)
		}
		if err == nil {
			continue
		}
		err = a.deadline(ctx, err)
		if p.Mode == securityv1.ModeWarn {
			warnings = append(warnings, fmt.Sprintf("image %s fails ClusterImagePolicy %q (warn mode, admitted): %s", img.Image, p.Name, shortReason(err)))
			continue
		}
		denials = append(denials, fmt.Sprintf("%s: image %s is denied by ClusterImagePolicy %q: %v; %s", img.Field, img.Image, p.Name, err, hint(err, p, img.Image)))
	}
	return denials, warnings
}

// deadline names --image-verify-timeout in err when that deadline is what
// ended the registry work, so a registry that hangs reads differently from
// one that refuses.
func (a *Admitter) deadline(ctx context.Context, err error) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("no answer within --image-verify-timeout %s: %w", a.Timeout, err)
}

// prepare decodes the request and loads the policies. It returns a
// response when the request needs no further work or cannot be handled.
func (a *Admitter) prepare(ctx context.Context, req admission.Request) ([]containerImage, []*Policy, *admission.Response) {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		r := admission.Allowed("")
		return nil, nil, &r
	}
	images, err := changedImages(req)
	if err != nil {
		r := admission.Errored(http.StatusBadRequest, err)
		return nil, nil, &r
	}
	if len(images) == 0 {
		r := admission.Allowed("")
		return nil, nil, &r
	}
	policies, err := a.Policies.Policies(ctx)
	if err != nil {
		r := admission.Errored(http.StatusInternalServerError, fmt.Errorf("load ClusterImagePolicies: %w", err))
		return nil, nil, &r
	}
	return images, policies, nil
}

// changedImages lists the images of the new object that the old one (on
// UPDATE) did not already run: an update that leaves images alone, such as
// removing a finalizer, must not fail because a registry is down.
func changedImages(req admission.Request) ([]containerImage, error) {
	images, err := imagesOf(req.Kind.Kind, req.Object.Raw)
	if err != nil || req.Operation != admissionv1.Update {
		return images, err
	}
	old, err := imagesOf(req.Kind.Kind, req.OldObject.Raw)
	if err != nil {
		return nil, err
	}
	had := make(map[string]bool, len(old))
	for _, o := range old {
		had[o.Image] = true
	}
	var out []containerImage
	for _, img := range images {
		if !had[img.Image] {
			out = append(out, img)
		}
	}
	return out, nil
}

func matching(policies []*Policy, repo string) []*Policy {
	var out []*Policy
	for _, p := range policies {
		if p.Matches(repo) {
			out = append(out, p)
		}
	}
	return out
}

func firstEnforcing(policies []*Policy) *Policy {
	for _, p := range policies {
		if p.Mode != securityv1.ModeWarn {
			return p
		}
	}
	return nil
}

// hint tells the user what to do about a failed verification.
func hint(err error, p *Policy, image string) string {
	var (
		none        *signing.NoSignaturesError
		wrongKey    *signing.KeyMismatchError
		wrongDigest *signing.DigestMismatchError
		unreachable *signing.RegistryUnreachableError
	)
	switch {
	case p.broken:
		return fmt.Sprintf("fix the policy's keys (kubectl describe clusterimagepolicy %s)", p.Name)
	case errors.As(err, &none), errors.As(err, &wrongKey):
		return fmt.Sprintf("sign it with a key the policy trusts: strata image sign --key cosign.key %s (or cosign sign --key cosign.key)", image)
	case errors.As(err, &wrongDigest):
		return "the tag now points at an image nobody signed (was it re-pushed?); sign the new digest or deploy the signed one"
	case errors.As(err, &unreachable), errors.Is(err, context.DeadlineExceeded):
		return "the policy fails closed: the image is denied until its registry answers"
	}
	return "the policy fails closed on errors"
}

// shortReason keeps warnings short: the API server truncates long ones.
func shortReason(err error) string {
	var (
		none        *signing.NoSignaturesError
		wrongKey    *signing.KeyMismatchError
		wrongDigest *signing.DigestMismatchError
		unreachable *signing.RegistryUnreachableError
	)
	switch {
	case errors.As(err, &none):
		return "no signature found"
	case errors.As(err, &wrongKey):
		return "not signed by a key the policy trusts"
	case errors.As(err, &wrongDigest):
		return "the signature is for another digest"
	case errors.As(err, &unreachable):
		return "registry unreachable"
	case errors.Is(err, context.DeadlineExceeded):
		return "verification timed out"
	}
	msg := err.Error()
	if len(msg) > 160 {
		msg = msg[:160] + "..."
	}
	return msg
}

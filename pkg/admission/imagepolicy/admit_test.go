package imagepolicy

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	securityv1 "github.com/strata-dev/strata/api/security/v1alpha1"
	"github.com/strata-dev/strata/pkg/registry"
	"github.com/strata-dev/strata/pkg/registry/registrytest"
	"github.com/strata-dev/strata/pkg/signing"
)

type staticPolicies []*Policy

func (s staticPolicies) Policies(context.Context) ([]*Policy, error) { return s, nil }

type noSecrets struct{}

func (noSecrets) SecretKey(context.Context, securityv1.SecretKeyReference) ([]byte, error) {
	return nil, errors.New("secret not found")
}

func newKey(t *testing.T) (signature.SignerVerifier, string) {
	t.Helper()
	sv, _, err := signature.NewDefaultECDSASignerVerifier()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := sv.PublicKey()
	pem, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sv, string(pem)
}

func push(t *testing.T, ref, content string) {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\necho "+content+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := registry.Build(registry.ImageSpec{Binary: exe})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.Push(img, ref); err != nil {
		t.Fatal(err)
	}
}

func sign(t *testing.T, ref string, sv signature.Signer) {
	t.Helper()
	if _, err := signing.Sign(context.Background(), ref, sv); err != nil {
		t.Fatal(err)
	}
}

func policy(t *testing.T, name string, mode securityv1.PolicyMode, globs []string, pems ...string) *Policy {
	t.Helper()
	cip := &securityv1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: securityv1.ClusterImagePolicySpec{Mode: mode}}
	for _, g := range globs {
		cip.Spec.Images = append(cip.Spec.Images, securityv1.ImagePattern{Glob: g})
	}
	for _, p := range pems {
		cip.Spec.Authorities = append(cip.Spec.Authorities, securityv1.Authority{Key: securityv1.KeySource{Data: p}})
	}
	p := Compile(context.Background(), cip, noSecrets{})
	if _, err := p.Problem(); err != nil {
		t.Fatal(err)
	}
	return p
}

func podRequest(t *testing.T, op admissionv1.Operation, kind string, obj, old any) admission.Request {
	t.Helper()
	raw := func(o any) runtime.RawExtension {
		if o == nil {
			return runtime.RawExtension{}
		}
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		return runtime.RawExtension{Raw: b}
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: op, Kind: metav1.GroupVersionKind{Kind: kind}, Object: raw(obj), OldObject: raw(old),
	}}
}

func pod(images ...string) map[string]any {
	var cs []any
	for i, img := range images {
		cs = append(cs, map[string]any{"name": "c" + string(rune('0'+i)), "image": img})
	}
	return map[string]any{"apiVersion": "v1", "kind": "Pod", "spec": map[string]any{"containers": cs}}
}

func deployment(image string) map[string]any {
	return map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "spec": map[string]any{
		"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": image}}}},
	}}
}

func TestValidate(t *testing.T) {
	reg := registrytest.Start(t)
	oldKey, oldPEM := newKey(t)
	newKeySV, newPEM := newKey(t)
	_, strangerPEM := newKey(t)

	signedOld := reg + "/team/signed-old:v1"
	push(t, signedOld, "old")
	sign(t, signedOld, oldKey)
	signedNew := reg + "/team/signed-new:v1"
	push(t, signedNew, "new")
	sign(t, signedNew, newKeySV)
	unsigned := reg + "/team/unsigned:v1"
	push(t, unsigned, "unsigned")
	other := reg + "/other/app:v1"
	push(t, other, "other")
	down := registrytest.FreeAddr(t)

	team := policy(t, "team", securityv1.ModeEnforce, []string{reg + "/team/*"}, oldPEM, newPEM)
	onlyStranger := policy(t, "stranger", securityv1.ModeEnforce, []string{reg + "/team/*"}, strangerPEM)
	warn := policy(t, "team-warn", securityv1.ModeWarn, []string{reg + "/team/*"}, strangerPEM)
	offline := policy(t, "offline", securityv1.ModeEnforce, []string{down + "/**"}, oldPEM)
	offlineWarn := policy(t, "offline-warn", securityv1.ModeWarn, []string{down + "/**"}, oldPEM)

	tests := []struct {
		name       string
		policies   []*Policy
		unmatched  Unmatched
		req        admission.Request
		allowed    bool
		wantInMsg  []string
		wantWarned string
	}{
		{name: "signed by the old key of a rotation", policies: []*Policy{team}, req: podRequest(t, admissionv1.Create, "Pod", pod(signedOld), nil), allowed: true},
		{name: "signed by the new key of a rotation", policies: []*Policy{team}, req: podRequest(t, admissionv1.Create, "Pod", pod(signedNew), nil), allowed: true},
		{name: "unsigned", policies: []*Policy{team}, req: podRequest(t, admissionv1.Create, "Pod", pod(unsigned), nil),
			wantInMsg: []string{unsigned, `ClusterImagePolicy "team"`, "no signatures found", "strata image sign --key", "spec.containers[c0].image"}},
		{name: "signed by a key the policy does not trust", policies: []*Policy{onlyStranger}, req: podRequest(t, admissionv1.Create, "Pod", pod(signedOld), nil),
			wantInMsg: []string{"does not match any of 1 keys"}},
		{name: "every matching policy must pass", policies: []*Policy{team, onlyStranger}, req: podRequest(t, admissionv1.Create, "Pod", pod(signedOld), nil),
			wantInMsg: []string{`"stranger"`}},
		{name: "deployment template", policies: []*Policy{team}, req: podRequest(t, admissionv1.Create, "Deployment", deployment(unsigned), nil),
			wantInMsg: []string{"spec.template.spec.containers[app].image", unsigned}},
		{name: "warn mode admits with a warning", policies: []*Policy{warn}, req: podRequest(t, admissionv1.Create, "Pod", pod(unsigned), nil),
			allowed: true, wantWarned: `fails ClusterImagePolicy "team-warn" (warn mode, admitted): no signature found`},
		{name: "unmatched denied", policies: []*Policy{team}, unmatched: UnmatchedDeny, req: podRequest(t, admissionv1.Create, "Pod", pod(other), nil),
			wantInMsg: []string{"matches no ClusterImagePolicy", reg + "/other/app"}},
		{name: "unmatched warned", policies: []*Policy{team}, unmatched: UnmatchedWarn, req: podRequest(t, admissionv1.Create, "Pod", pod(other), nil),
			allowed: true, wantWarned: "matches no ClusterImagePolicy"},
		{name: "unmatched allowed", policies: []*Policy{team}, unmatched: UnmatchedAllow, req: podRequest(t, admissionv1.Create, "Pod", pod(other), nil), allowed: true},
		{name: "registry down fails closed", policies: []*Policy{offline}, req: podRequest(t, admissionv1.Create, "Pod", pod(down+"/app:v1"), nil),
			wantInMsg: []string{"registry unreachable", "fails closed"}},
		{name: "registry down in warn mode", policies: []*Policy{offlineWarn}, req: podRequest(t, admissionv1.Create, "Pod", pod(down+"/app:v1"), nil),
			allowed: true, wantWarned: "registry unreachable"},
		{name: "update that keeps the images needs no registry", policies: []*Policy{offline},
			req: podRequest(t, admissionv1.Update, "Pod", pod(down+"/app:v1"), pod(down+"/app:v1")), allowed: true},
		{name: "invalid reference", policies: []*Policy{team}, req: podRequest(t, admissionv1.Create, "Pod", pod("UPPER/Case:v1"), nil),
			wantInMsg: []string{"not a valid image reference"}},
		{name: "delete is not checked", policies: []*Policy{team}, req: podRequest(t, admissionv1.Delete, "Pod", nil, pod(unsigned)), allowed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unmatched := tt.unmatched
			if unmatched == "" {
				unmatched = UnmatchedDeny
			}
			a := &Admitter{Policies: staticPolicies(tt.policies), Verifier: NewVerifier(100, time.Minute), Unmatched: unmatched, Timeout: 5 * time.Second}
			resp := a.Validator().Handle(context.Background(), tt.req)
			if resp.Allowed != tt.allowed {
				t.Fatalf("allowed = %v, want %v; message: %s", resp.Allowed, tt.allowed, resp.Result.Message)
			}
			for _, want := range tt.wantInMsg {
				if !strings.Contains(resp.Result.Message, want) {
					t.Errorf("message %q does not contain %q", resp.Result.Message, want)
				}
			}
			if tt.wantWarned != "" && !strings.Contains(strings.Join(resp.Warnings, "\n"), tt.wantWarned) {
				t.Errorf("warnings %q do not contain %q", resp.Warnings, tt.wantWarned)
			}
		})
	}
}

func TestMutatePinsVerifiedDigest(t *testing.T) {
	reg := registrytest.Start(t)
	key, pem := newKey(t)
	ref := reg + "/team/app:v1"
	push(t, ref, "first")
	sign(t, ref, key)
	p := policy(t, "team", securityv1.ModeEnforce, []string{reg + "/team/*"}, pem)
	a := &Admitter{Policies: staticPolicies{p}, Verifier: NewVerifier(100, time.Minute), Unmatched: UnmatchedDeny, Timeout: 5 * time.Second}

	pinned := func() string {
		t.Helper()
		resp := a.Mutator().Handle(context.Background(), podRequest(t, admissionv1.Create, "Deployment", deployment(ref), nil))
		if !resp.Allowed || len(resp.Patches) != 1 {
			t.Fatalf("mutate: allowed=%v patches=%v message=%v", resp.Allowed, resp.Patches, resp.Result)
		}
		if got := resp.Patches[0].Path; got != "/spec/template/spec/containers/0/image" {
			t.Fatalf("patch path %s", got)
		}
		return resp.Patches[0].Value.(string)
	}
	first := pinned()
	d, err := name.NewDigest(first)
	if err != nil || !strings.HasPrefix(first, reg+"/team/app@sha256:") {
		t.Fatalf("pinned image %q is not repo@digest: %v", first, err)
	}
	if resp := a.Validator().Handle(context.Background(), podRequest(t, admissionv1.Create, "Pod", pod(d.String()), nil)); !resp.Allowed {
		t.Fatalf("signed digest denied: %s", resp.Result.Message)
	}

	// Re-pushing the tag moves it to an unsigned image: the next admission
	// pins the new digest, and verification refuses it.
	push(t, ref, "second")
	second := pinned()
	if second == first {
		t.Fatal("tag resolution was cached: the re-pushed tag still pins the old digest")
	}
	resp := a.Validator().Handle(context.Background(), podRequest(t, admissionv1.Create, "Pod", pod(second), nil))
	if resp.Allowed {
		t.Fatal("re-pushed unsigned image admitted")
	}

	// A digest already pinned is left alone.
	resp = a.Mutator().Handle(context.Background(), podRequest(t, admissionv1.Create, "Pod", pod(first), nil))
	if !resp.Allowed || len(resp.Patches) != 0 {
		t.Fatalf("pinned image re-patched: %v", resp.Patches)
	}
}

func TestMutateFailsClosedWhenRegistryDown(t *testing.T) {
	down := registrytest.FreeAddr(t)
	_, pem := newKey(t)
	for _, tt := range []struct {
		mode    securityv1.PolicyMode
		allowed bool
	}{{securityv1.ModeEnforce, false}, {securityv1.ModeWarn, true}} {
		p := policy(t, "offline", tt.mode, []string{down + "/**"}, pem)
		a := &Admitter{Policies: staticPolicies{p}, Verifier: NewVerifier(10, time.Minute), Unmatched: UnmatchedDeny, Timeout: 2 * time.Second}
		resp := a.Mutator().Handle(context.Background(), podRequest(t, admissionv1.Create, "Pod", pod(down+"/app:v1"), nil))
		if resp.Allowed != tt.allowed {
			t.Errorf("mode %s: allowed=%v, want %v (%v)", tt.mode, resp.Allowed, tt.allowed, resp.Result)
		}
	}
}

// A registry that accepts connections and never answers: both handlers
// deny at the Admitter's deadline and say it was the deadline.
func TestHangingRegistryDeniedAtDeadline(t *testing.T) {
	hang, _ := registrytest.Hanging(t)
	_, pem := newKey(t)
	p := policy(t, "hang", securityv1.ModeEnforce, []string{hang + "/**"}, pem)
	a := &Admitter{Policies: staticPolicies{p}, Verifier: NewVerifier(10, time.Minute), Unmatched: UnmatchedDeny, Timeout: 300 * time.Millisecond}
	for name, h := range map[string]admission.Handler{"mutate": a.Mutator(), "validate": a.Validator()} {
		start := time.Now()
		resp := h.Handle(context.Background(), podRequest(t, admissionv1.Create, "Pod", pod(hang+"/app:v1"), nil))
		took := time.Since(start)
		if resp.Allowed {
			t.Fatalf("%s: admitted while the registry hangs", name)
		}
		if msg := resp.Result.Message; !strings.Contains(msg, "no answer within --image-verify-timeout 300ms") || !strings.Contains(msg, `ClusterImagePolicy "hang"`) {
			t.Errorf("%s: denial does not name the deadline and policy: %s", name, msg)
		}
		if took > 2*time.Second {
			t.Errorf("%s: took %s with a 300ms deadline", name, took)
		}
	}
}

func TestVerifierCachesSuccessOnly(t *testing.T) {
	reg := registrytest.Start(t)
	key, pem := newKey(t)
	ref := reg + "/team/app:v1"
	push(t, ref, "x")
	p := policy(t, "team", securityv1.ModeEnforce, []string{reg + "/**"}, pem)
	v := NewVerifier(10, time.Hour)
	r, _ := name.ParseReference(ref)
	d, err := v.Resolve(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(context.Background(), d, p); err == nil {
		t.Fatal("unsigned image verified")
	}
	sign(t, ref, key) // a failure is not remembered: signing fixes it at once
	if err := v.Verify(context.Background(), d, p); err != nil {
		t.Fatalf("signed image: %v", err)
	}
	// A success is remembered: deleting the signature (a revocation) is
	// seen by a fresh verifier at once, by this one only after the TTL.
	if err := remote.Delete(signing.SignatureTag(d)); err != nil {
		t.Fatal(err)
	}
	if err := NewVerifier(10, time.Hour).Verify(context.Background(), d, p); err == nil {
		t.Fatal("revoked signature still verifies without a cache")
	}
	if err := v.Verify(context.Background(), d, p); err != nil {
		t.Fatalf("cached verdict not used: %v", err)
	}
	// ...and never for another key set.
	_, otherPEM := newKey(t)
	if err := v.Verify(context.Background(), d, policy(t, "other", securityv1.ModeEnforce, []string{reg + "/**"}, otherPEM)); err == nil {
		t.Fatal("cached verdict reused for a different key")
	}
}

func TestValidateSpec(t *testing.T) {
	_, pem := newKey(t)
	tests := []struct {
		name string
		spec securityv1.ClusterImagePolicySpec
		want []string
	}{
		{name: "valid", spec: securityv1.ClusterImagePolicySpec{Images: []securityv1.ImagePattern{{Glob: "r.io/**"}}, Authorities: []securityv1.Authority{{Key: securityv1.KeySource{Data: pem}}}}},
		{name: "bad glob", spec: securityv1.ClusterImagePolicySpec{Images: []securityv1.ImagePattern{{Glob: "r.io/ok"}, {Glob: "r.io/[abc"}}, Authorities: []securityv1.Authority{{Key: securityv1.KeySource{Data: pem}}}},
			want: []string{"spec.images[1].glob", "unterminated character class"}},
		{name: "not PEM", spec: securityv1.ClusterImagePolicySpec{Images: []securityv1.ImagePattern{{Glob: "r.io/**"}}, Authorities: []securityv1.Authority{{Key: securityv1.KeySource{Data: "hello"}}}},
			want: []string{"spec.authorities[0].key.data", "not a PEM file"}},
		{name: "private key pasted", spec: securityv1.ClusterImagePolicySpec{Images: []securityv1.ImagePattern{{Glob: "r.io/**"}}, Authorities: []securityv1.Authority{{Key: securityv1.KeySource{Data: "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"}}}},
			want: []string{"spec.authorities[0].key.data", "not the private key"}},
		{name: "both key sources", spec: securityv1.ClusterImagePolicySpec{Images: []securityv1.ImagePattern{{Glob: "r.io/**"}}, Authorities: []securityv1.Authority{{Key: securityv1.KeySource{Data: pem, SecretRef: &securityv1.SecretKeyReference{Namespace: "a", Name: "b"}}}}},
			want: []string{"exactly one of data"}},
		{name: "bad mode", spec: securityv1.ClusterImagePolicySpec{Mode: "audit", Images: []securityv1.ImagePattern{{Glob: "r.io/**"}}, Authorities: []securityv1.Authority{{Key: securityv1.KeySource{Data: pem}}}},
			want: []string{"spec.mode", `"enforce"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateSpec(&tt.spec).ToAggregate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestCompileKeepsBrokenPolicyGuarding(t *testing.T) {
	cip := &securityv1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: securityv1.ClusterImagePolicySpec{
		Images:      []securityv1.ImagePattern{{Glob: "r.io/**"}},
		Authorities: []securityv1.Authority{{Key: securityv1.KeySource{SecretRef: &securityv1.SecretKeyReference{Namespace: "ns", Name: "gone"}}}},
	}}
	p := Compile(context.Background(), cip, noSecrets{})
	if reason, err := p.Problem(); err == nil || reason != securityv1.ReasonKeyNotFound {
		t.Fatalf("problem = %q %v", reason, err)
	}
	if p.Usable() || !p.Matches("r.io/app") {
		t.Fatal("a policy without keys must still match its images, and fail them")
	}
	d, _ := name.NewDigest("r.io/app@sha256:" + strings.Repeat("a", 64))
	if err := NewVerifier(1, time.Minute).Verify(context.Background(), d, p); err == nil || !strings.Contains(err.Error(), "no key of the policy") {
		t.Fatalf("verify with a broken policy: %v", err)
	}
}

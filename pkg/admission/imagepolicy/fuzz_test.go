package imagepolicy

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// FuzzCompileGlob: a glob is refused with a message that quotes it, or
// compiles; a glob without metacharacters matches exactly itself, and
// a single '*' never matches across a '/'.
func FuzzCompileGlob(f *testing.F) {
	for _, seed := range []string{"localhost:5000/**", "registry/team/*", "reg/app?", "reg/[abc]x", "reg/[!a]", "reg/[]]", "a\\*b", "[", "]", "x@sha256", "reg/[z-a]", "reg/[[:alpha:]]", "**/*", "\\"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, glob string) {
		re, err := compileGlob(glob)
		if err != nil {
			if !strings.Contains(err.Error(), "glob ") {
				t.Fatalf("error for %q does not name the glob: %v", glob, err)
			}
			return
		}
		if !strings.ContainsAny(glob, `*?[]\`) && !re.MatchString(glob) {
			t.Fatalf("literal glob %q does not match itself", glob)
		}
		if glob == "*" && re.MatchString("a/b") {
			t.Fatal("'*' matches across '/'")
		}
		if !strings.Contains(glob, "*") && !strings.ContainsAny(glob, "?[") && strings.Count(glob, `\`) == 0 && re.MatchString(glob+"/x") {
			t.Fatalf("literal glob %q matches a longer name", glob)
		}
	})
}

// FuzzPolicyValidator: any object the API server could send the
// ClusterImagePolicy webhook gets an answer (allowed, denied with reasons,
// or a 400), never a panic; a denial names the field at fault.
func FuzzPolicyValidator(f *testing.F) {
	f.Add(`{"apiVersion":"security.strata.dev/v1alpha1","kind":"ClusterImagePolicy","metadata":{"name":"p"},"spec":{"images":[{"glob":"localhost:5000/**"}],"authorities":[{"key":{"data":"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----"}}]}}`)
	f.Add(`{"spec":{"images":[{"glob":"["}],"authorities":[{"key":{}}],"mode":"audit"}}`)
	f.Add(`{"spec":{"authorities":[{"key":{"data":"x","secretRef":{"name":"s"}}}]}}`)
	f.Add(`not json`)
	h := PolicyValidator()
	f.Fuzz(func(t *testing.T, object string) {
		req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: []byte(object)},
		}}
		resp := h.Handle(context.Background(), req)
		if !resp.Allowed && resp.Result != nil && resp.Result.Code == 403 && !strings.Contains(resp.Result.Message, "spec.") {
			t.Fatalf("denial without a field: %q", resp.Result.Message)
		}
		if resp.Allowed && !json.Valid([]byte(object)) {
			t.Fatalf("allowed a body that is not JSON: %q", object)
		}
	})
}

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/strata-dev/strata/pkg/registry/registrytest"
	"github.com/strata-dev/strata/pkg/signing"
)

// TestCosignInterop checks Strata's signing against the real cosign CLI
// (built from its Go module by `make cosigntool`), both ways: images signed
// by cosign, in its classic layout and as cosign 3 bundles, are admitted;
// cosign verifies what `strata image sign` wrote; and each side refuses the
// other's signature under the wrong key.
func TestCosignInterop(t *testing.T) {
	s := cluster(t)
	keys := t.TempDir()
	home := t.TempDir()
	run := func(name string, env []string, args ...string) (string, error) {
		cmd := exec.Command(bin(name), args...)
		cmd.Dir = keys
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// cosign must not reach the public Sigstore (TUF, Rekor, Fulcio): every
	// non-loopback request goes to a proxy that refuses, and its TUF cache
	// is the test's own.
	offline := []string{"COSIGN_PASSWORD=e2e", "HOME=" + home, "TUF_ROOT=" + filepath.Join(home, "tuf"),
		"HTTPS_PROXY=http://127.0.0.1:1", "HTTP_PROXY=http://127.0.0.1:1", "NO_PROXY=127.0.0.1,localhost"}
	cosign := func(args ...string) (string, error) { return run("cosign", offline, args...) }
	must := func(name string, args ...string) string {
		t.Helper()
		out, err := run(name, offline, args...)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return out
	}
	must("cosign", "generate-key-pair", "--output-key-prefix", "cosign")
	must("strata", "keys", "generate", "--output-prefix", "strata")
	pub := func(name string) string {
		b, err := os.ReadFile(filepath.Join(keys, name+".pub"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// Two policies, one per key, so an admission says which key it needed.
	s.applyPolicy(t, "e2e-cosign", "enforce", []string{"127.0.0.1:5000/e2e-cosign/**"}, pub("cosign"))
	s.applyPolicy(t, "e2e-strata", "enforce", []string{"127.0.0.1:5000/e2e-strata/**"}, pub("strata"))
	t.Cleanup(func() { s.kubectl(t, "delete", "clusterimagepolicy", "e2e-cosign", "e2e-strata", "--ignore-not-found") })

	// The cosign 3 signing flags for a key pair and no public Sigstore:
	// no transparency log, no signing config fetched over TUF.
	cosignSign := []string{"sign", "--key", "cosign.key", "--tlog-upload=false", "--use-signing-config=false", "-y"}

	t.Run("images signed by cosign are admitted", func(t *testing.T) {
		for _, c := range []struct{ name, format string }{
			{"classic", "--new-bundle-format=false"}, // the .sig tag layout
			{"bundle", "--new-bundle-format=true"},   // a sigstore bundle as an OCI referrer
		} {
			image := "127.0.0.1:5000/e2e-cosign/" + c.name + ":v1"
			pushUnsignedImage(t, "hello", image, "--port", "8080", "--user", "65532")
			pod := "cosign-" + c.name
			if out, err := s.applyPod(t, pod, image); err == nil || !strings.Contains(out, "no signatures found") {
				t.Fatalf("%s: unsigned image not refused as unsigned: %v\n%s", c.name, err, out)
			}
			must("cosign", append(append([]string{}, cosignSign...), c.format, image)...)
			if got := signatureLayout(t, image); got != c.name {
				t.Fatalf("cosign %s wrote a %s signature, want %s: the test would not cover that format", c.format, got, c.name)
			}
			if out, err := s.applyPod(t, pod, image); err != nil {
				t.Fatalf("%s: image signed by cosign rejected: %v\n%s", c.name, err, out)
			}
			s.waitPodRunning(t, pod)
		}
	})

	t.Run("cosign signs with a key strata generated", func(t *testing.T) {
		image := "127.0.0.1:5000/e2e-strata/by-cosign:v1"
		pushUnsignedImage(t, "hello", image, "--port", "8080", "--user", "65532")
		out, err := cosign("sign", "--key", "strata.key", "--tlog-upload=false", "--use-signing-config=false", "-y", "--new-bundle-format=false", image)
		if err != nil {
			t.Fatalf("cosign could not sign with strata's key file: %v\n%s", err, out)
		}
		if out, err := s.applyPod(t, "cosign-strata-key", image); err != nil {
			t.Fatalf("rejected: %v\n%s", err, out)
		}
	})

	t.Run("cosign verify accepts a strata signature and only under its key", func(t *testing.T) {
		image := "127.0.0.1:5000/e2e-strata/by-strata:v1"
		pushUnsignedImage(t, "hello", image)
		verify := []string{"verify", "--insecure-ignore-tlog=true", "--new-bundle-format=false", "--output", "json"}
		if out, err := cosign(append(verify, "--key", "strata.pub", image)...); err == nil {
			t.Fatalf("cosign verified an unsigned image:\n%s", out)
		}
		must("strata", "image", "sign", "--key", "strata.key", image)
		out := must("cosign", append(verify, "--key", "strata.pub", image)...)
		if !strings.Contains(out, `"docker-manifest-digest":"sha256:`) {
			t.Fatalf("cosign verify printed no verified payload:\n%s", out)
		}
		if out, err := cosign(append(verify, "--key", "cosign.pub", image)...); err == nil {
			t.Fatalf("cosign verified a strata signature under another key:\n%s", out)
		}
		// And strata refuses cosign's signature under the wrong key too.
		if out, err := run("strata", nil, "image", "verify", "--key", "strata.pub", "127.0.0.1:5000/e2e-cosign/classic:v1"); err == nil {
			t.Fatalf("strata verified a cosign signature under another key:\n%s", out)
		}
	})
}

// signatureLayout says where the signature of image is: "classic" (the
// sha256-<hex>.sig tag), "bundle" (a sigstore bundle as an OCI referrer),
// or "none".
func signatureLayout(t *testing.T, image string) string {
	t.Helper()
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatalf("resolve %s: %v", image, err)
	}
	d := ref.Context().Digest(desc.Digest.String())
	idx, err := remote.Referrers(d)
	if err != nil {
		t.Fatalf("referrers of %s: %v", d, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		if strings.HasPrefix(m.ArtifactType, "application/vnd.dev.sigstore.bundle") {
			return "bundle"
		}
	}
	if _, err := remote.Head(signing.SignatureTag(d)); err == nil {
		return "classic"
	}
	return "none"
}

// TestImagePolicyHangingRegistry: a registry that accepts the connection
// and never answers must not hold admission until the API server's webhook
// timeout; the policy fails closed at --image-verify-timeout (the shared
// server runs the default, 5s) with a message that says so.
func TestImagePolicyHangingRegistry(t *testing.T) {
	s := cluster(t)
	hang, accepted := registrytest.Hanging(t)
	keys := t.TempDir()
	gen := exec.Command(bin("strata"), "keys", "generate", "--output-prefix", filepath.Join(keys, "hang"))
	gen.Env = append(os.Environ(), "COSIGN_PASSWORD=e2e")
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("strata keys generate: %v\n%s", err, out)
	}
	pem, err := os.ReadFile(filepath.Join(keys, "hang.pub"))
	if err != nil {
		t.Fatal(err)
	}
	s.applyPolicy(t, "e2e-hang", "enforce", []string{hang + "/hang/**"}, string(pem))
	t.Cleanup(func() { s.kubectl(t, "delete", "clusterimagepolicy", "e2e-hang", "--ignore-not-found") })

	start := time.Now()
	out, err := s.applyPod(t, "hang", hang+"/hang/app:v1")
	took := time.Since(start)
	if err == nil {
		t.Fatalf("pod admitted while its registry hangs:\n%s", out)
	}
	for _, want := range []string{`ClusterImagePolicy "e2e-hang" fails closed`, "no answer within --image-verify-timeout 5s"} {
		if !strings.Contains(out, want) {
			t.Errorf("rejection lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "failed calling webhook") {
		t.Errorf("the API server's webhook timeout fired, not --image-verify-timeout:\n%s", out)
	}
	// At least the verify deadline (it waited for the registry), and well
	// under the webhook's 10s (kubectl's own start-up is the margin).
	if took < 5*time.Second || took > 8*time.Second {
		t.Errorf("refused after %s; want the 5s --image-verify-timeout", took.Round(time.Millisecond))
	}
	n := accepted()
	if n == 0 {
		t.Errorf("the webhook never connected to the hanging registry; the test proved nothing")
	}
	t.Logf("refused after %s, %d connection(s) to the hanging registry", took.Round(time.Millisecond), n)
}

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The signing CLI against the server's embedded registry: keys, sign,
// verify, key rotation, and a re-pushed tag that no longer verifies.
func TestImageSignAndVerify(t *testing.T) {
	cluster(t)
	dir := t.TempDir()
	strata := func(args ...string) (string, error) {
		cmd := exec.Command(bin("strata"), args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=e2e-secret")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := strata(args...)
		if err != nil {
			t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	must("keys", "generate", "--output-prefix", "a")
	must("keys", "generate", "--output-prefix", "b")
	if out, err := strata("keys", "generate", "--output-prefix", "a"); err == nil {
		t.Fatalf("keys generate overwrote an existing key:\n%s", out)
	}

	ref := "localhost:5000/signed/hello:v1"
	pushUnsignedImage(t, "hello", ref, "--port", "8080")
	if out, err := strata("image", "verify", "--key", "a.pub", ref); err == nil || !strings.Contains(out, "no signatures found") {
		t.Fatalf("unsigned image verified or unclear error (%v):\n%s", err, out)
	}
	must("image", "sign", "--key", "a.key", ref)
	must("image", "verify", "--key", "a.pub", ref)
	if out, err := strata("image", "verify", "--key", "b.pub", ref); err == nil || !strings.Contains(out, "does not match") {
		t.Fatalf("image verified with the wrong key or unclear error (%v):\n%s", err, out)
	}
	// Rotation: either of two keys is enough.
	must("image", "verify", "--key", "b.pub", "--key", "a.pub", ref)

	// A wrong password names the problem.
	cmd := exec.Command(bin("strata"), "image", "sign", "--key", filepath.Join(dir, "a.key"), ref)
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=wrong")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "wrong password") {
		t.Fatalf("wrong password: %v\n%s", err, out)
	}

	// Another image pushed under the signed tag must not verify.
	pushUnsignedImage(t, "netcheck", ref)
	if out, err := strata("image", "verify", "--key", "a.pub", ref); err == nil {
		t.Fatalf("re-pushed tag still verifies:\n%s", out)
	}
}

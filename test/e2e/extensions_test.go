package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/strata-dev/strata/pkg/layout"
)

// Issue 20: Strata's components on someone else's cluster. A `strata server
// --vanilla` (upstream Kubernetes only) stands in for an existing cluster;
// `strata extensions --kubeconfig` runs the same extension components
// against it from outside: then a signed image is admitted, an unsigned one
// refused, and a Function answers through the extensions' gateway.
func TestExtensionsOnVanillaCluster(t *testing.T) {
	if shared != nil {
		// The vanilla node needs the shared server's ports.
		if err := shared.stop(); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := os.MkdirTemp("", "strata-e2e-vanilla-")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{dataDir: dir, args: []string{"--vanilla"}}
	if err := s.start(); err != nil {
		t.Fatalf("start strata server --vanilla: %v", err)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Error(err)
		}
		if leaks := append(s.leftovers(), podCgroups()...); len(leaks) > 0 {
			t.Errorf("left behind:\n%s", strings.Join(leaks, "\n"))
		} else if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	ctx := context.Background()

	// Vanilla: no Strata CRD, webhook or RuntimeClass, and unsigned images run.
	hooks, err := s.client.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hooks.Items {
		if strings.Contains(h.Name, "strata") {
			t.Fatalf("webhook %s on a vanilla server", h.Name)
		}
	}
	if out, err := s.kubectl(t, "get", "crd", "clusterimagepolicies.security.strata.dev"); err == nil {
		t.Fatalf("a vanilla server has Strata's CRD:\n%s", out)
	}
	if _, err := s.client.NodeV1().RuntimeClasses().Get(ctx, "wasm", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("RuntimeClass wasm on a vanilla server: %v", err)
	}
	pushUnsignedImage(t, "hello", "localhost:5000/hello:vanilla", "--port", "8080", "--user", "65532")
	s.createHelloPod(t, "before-extensions", "localhost:5000/hello:vanilla")

	// The extensions, from outside the cluster, on ports of their own.
	state := t.TempDir()
	var out syncBuffer
	ext := exec.Command(bin("strata"), "extensions", "--kubeconfig", filepath.Join(dir, "admin.kubeconfig"), "--state-dir", state,
		"--webhook-port", "29443", "--gateway-port", "28088", "--metrics-port", "29464")
	ext.Stdout, ext.Stderr = &out, &out
	if err := ext.Start(); err != nil {
		t.Fatal(err)
	}
	extDone := make(chan error, 1)
	go func() { extDone <- ext.Wait() }()
	defer func() {
		_ = ext.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-extDone:
			if err != nil {
				t.Errorf("strata extensions after SIGTERM: %v\n%s", err, out.String())
			}
		case <-time.After(30 * time.Second):
			_ = ext.Process.Kill()
			t.Errorf("strata extensions did not stop within 30s of SIGTERM\n%s", out.String())
		}
	}()
	waitFor(t, 2*time.Minute, "the extensions to enforce image policy", func(context.Context) (bool, error) {
		select {
		case err := <-extDone:
			t.Fatalf("strata extensions exited: %v\n%s", err, out.String())
		default:
		}
		return strings.Contains(out.String(), "image signature policy enforced"), nil
	})

	// Trust the server's key for the local registry (inline, as a user of
	// another cluster would paste their cosign.pub).
	_, pubFile, _ := layout.Layout{DataDir: dir}.SigningKey()
	pub, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	policy := "apiVersion: security.strata.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: vanilla-local}\nspec:\n" +
		"  images: [{glob: \"localhost:5000/**\"}]\n  authorities:\n  - name: server-key\n    key:\n      data: |\n        " +
		strings.ReplaceAll(strings.TrimSpace(string(pub)), "\n", "\n        ") + "\n"
	applyYAML(t, s, policy)
	pushImage := func(binary, ref string, sign bool, extra ...string) {
		t.Helper()
		strata(t, append([]string{"image", "build", "--binary", bin(binary), "-t", ref, "--push"}, extra...)...)
		if sign {
			strata(t, "image", "sign", "--cluster-key", "--data-dir", dir, ref)
		}
	}
	pushImage("hello", "localhost:5000/hello:signed", true, "--port", "8080", "--user", "65532")
	// Another program: a signature is per digest, and the same image under
	// another tag would carry the signed one's.
	pushImage("netcheck", "localhost:5000/netcheck:unsigned", false, "--user", "65532")
	waitFor(t, 30*time.Second, "a signed image admitted", func(context.Context) (bool, error) {
		return s.tryHelloPod(t, "signed", "localhost:5000/hello:signed") == nil, nil
	})
	err = s.tryHelloPod(t, "unsigned", "localhost:5000/netcheck:unsigned")
	if err == nil || !strings.Contains(err.Error(), `denied by ClusterImagePolicy "vanilla-local": no signatures found for localhost:5000/netcheck@sha256:`) {
		t.Fatalf("unsigned image: %v, want a denial naming the image and its signature", err)
	}

	// A wasm Function answers through the extensions' gateway: at zero
	// replicas the gateway's warm wasm host serves it (the vanilla node has
	// no wasm runtime, which a Function at zero does not need).
	strata(t, "image", "build", "--wasm", bin("wasm-http.wasm"), "--http-port", "8080", "-t", "localhost:5000/wasm-http:vanilla", "--push")
	strata(t, "image", "sign", "--cluster-key", "--data-dir", dir, "localhost:5000/wasm-http:vanilla")
	applyYAML(t, s, `apiVersion: serving.strata.dev/v1alpha1
kind: Function
metadata: {name: vanilla-fn, namespace: default}
spec:
  image: localhost:5000/wasm-http:vanilla
  runtime: wasm
  port: 8080
  env: [{name: GREETING, value: hello from another cluster}]
  minScale: 0
  maxScale: 1
`)
	client := &http.Client{Timeout: 10 * time.Second}
	waitFor(t, time.Minute, "the Function to answer through the extensions' gateway", func(context.Context) (bool, error) {
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:28088/", nil)
		req.Host = "vanilla-fn.default.localhost"
		resp, err := client.Do(req)
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		body := make([]byte, 4096)
		n, _ := resp.Body.Read(body)
		return resp.StatusCode == http.StatusOK && strings.Contains(string(body[:n]), "hello from another cluster"), nil
	})
	s.kubectl(t, "delete", "function", "vanilla-fn", "--wait=false")
}

// createHelloPod creates a restricted hello pod and fails the test if the
// API refuses it.
func (s *server) createHelloPod(t *testing.T, name, image string) {
	t.Helper()
	if err := s.tryHelloPod(t, name, image); err != nil {
		t.Fatalf("create pod %s (%s): %v", name, image, err)
	}
}

// tryHelloPod creates a restricted hello pod and returns the API's answer.
func (s *server) tryHelloPod(t *testing.T, name, image string) error {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: restricted(corev1.PodSpec{Containers: []corev1.Container{{Name: "hello", Image: image}}})}
	_, err := s.client.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{})
	return err
}

// applyYAML applies a manifest with the embedded kubectl.
func applyYAML(t *testing.T, s *server, manifest string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	s.mustKubectl(t, "apply", "-f", f)
}

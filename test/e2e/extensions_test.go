package e2e

import (
	"context"
	"fmt"
	"io"
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
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/strata-dev/strata/pkg/layout"
)

// Issue 20: Strata's components on someone else's cluster. A `strata server
// --vanilla` (upstream Kubernetes only) stands in for an existing cluster;
// `strata extensions --kubeconfig` runs the same extension components
// against it from outside: then a signed image is admitted, an unsigned one
// refused, and a Function answers through the extensions' gateway.
func TestExtensionsOnVanillaCluster(t *testing.T) {
	s := ownServer(t, "strata-e2e-vanilla-", []string{"--vanilla"}, nil)
	dir := s.dataDir
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

	// Trust the server's key for a registry (inline, as a user of another
	// cluster would paste their cosign.pub), push a signed hello and an
	// unsigned netcheck there (another program: a signature is per digest,
	// and the same image under another tag would carry the signed one's),
	// and check that the first is admitted and the second refused.
	_, pubFile, _ := layout.Layout{DataDir: dir}.SigningKey()
	pub, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	enforced := func(t *testing.T, policyName, reg string) {
		t.Helper()
		strata(t, "image", "build", "--binary", bin("hello"), "--port", "8080", "--user", "65532", "--push", "-t", reg+"/hello:signed")
		strata(t, "image", "sign", "--cluster-key", "--data-dir", dir, reg+"/hello:signed")
		strata(t, "image", "build", "--binary", bin("netcheck"), "--user", "65532", "--push", "-t", reg+"/netcheck:unsigned")
		applyYAML(t, s, "apiVersion: security.strata.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: "+policyName+"}\nspec:\n"+
			"  images: [{glob: \""+reg+"/**\"}]\n  authorities:\n  - name: server-key\n    key:\n      data: |\n        "+
			strings.ReplaceAll(strings.TrimSpace(string(pub)), "\n", "\n        ")+"\n")
		waitFor(t, 30*time.Second, "a signed image admitted", func(context.Context) (bool, error) {
			return s.tryHelloPod(t, "signed", reg+"/hello:signed") == nil, nil
		})
		err := s.tryHelloPod(t, "unsigned", reg+"/netcheck:unsigned")
		if err == nil || !strings.Contains(err.Error(), `denied by ClusterImagePolicy "`+policyName+`": no signatures found for `+reg+`/netcheck@sha256:`) {
			t.Fatalf("unsigned image: %v, want a denial naming the image and its signature", err)
		}
		s.mustKubectl(t, "delete", "pod", "signed", "--wait=false")
	}

	t.Run("the Helm chart installs and enforces and serves a Function and uninstalls cleanly", func(t *testing.T) {
		s.helmChart(t, enforced)
	})
	t.Run("strata extensions runs from outside the cluster", func(t *testing.T) {
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

		enforced(t, "vanilla-local", "localhost:5000")

		// A wasm Function answers through the extensions' gateway: at zero
		// replicas the gateway's warm wasm host serves it (the vanilla node has
		// no wasm runtime, which a Function at zero does not need).
		strata(t, "image", "build", "--wasm", bin("wasm-http.wasm"), "--http-port", "8080", "--push", "-t", "localhost:5000/wasm-http:vanilla")
		strata(t, "image", "sign", "--cluster-key", "--data-dir", dir, "localhost:5000/wasm-http:vanilla")
		applyYAML(t, s, functionYAML("vanilla-fn", "localhost:5000/wasm-http:vanilla", "wasm", "hello from another cluster"))
		waitAnswer(t, "127.0.0.1:28088", "vanilla-fn.default.localhost", "hello from another cluster")
		s.kubectl(t, "delete", "function", "vanilla-fn", "--wait=false")
	})
}

// waitAnswer waits for a Function to answer with want through the gateway
// at addr (host:port), for the Function's host name.
func waitAnswer(t *testing.T, addr, host, want string) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	var last string
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			last = err.Error()
		} else {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), want) {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %q through the gateway at %s within 2m; last answer: %s", host, want, addr, last)
}

// functionYAML is a Function at zero replicas.
func functionYAML(name, image, runtime, greeting string) string {
	return fmt.Sprintf(`apiVersion: serving.strata.dev/v1alpha1
kind: Function
metadata: {name: %s, namespace: default}
spec:
  image: %s
  runtime: %s
  port: 8080
  env: [{name: GREETING, value: %s}]
  minScale: 0
  maxScale: 1
`, name, image, runtime, greeting)
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
	// Not t.TempDir(): kubectl splits -f at commas, which subtest names have.
	f, err := os.CreateTemp("", "strata-e2e-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(manifest); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// A webhook that was just registered may not have its Service
	// endpoint yet: the API server then answers "failed calling webhook".
	var out string
	var applyErr error
	_ = wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		out, applyErr = s.kubectl(t, "apply", "-f", f.Name())
		return applyErr == nil || !strings.Contains(out, "failed calling webhook"), nil
	})
	if applyErr != nil {
		t.Fatalf("kubectl apply -f %s: %v\n%s", f.Name(), applyErr, out)
	}
}

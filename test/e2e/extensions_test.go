package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
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

	"github.com/strata-dev/strata/pkg/controlplane/pki"
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
		// The extensions, from outside the cluster, on ports of their own,
		// with a gateway that serves HTTPS to Kubernetes users only.
		state := t.TempDir()
		gwCert, gwCAs := gatewayCert(t)
		var out syncBuffer
		ext := exec.Command(bin("strata"), "extensions", "--kubeconfig", filepath.Join(dir, "admin.kubeconfig"), "--state-dir", state,
			"--webhook-port", "29443", "--gateway-port", "28088", "--metrics-port", "29464",
			"--gateway-auth", "kubernetes", "--gateway-tls-cert-file", gwCert.CertFile, "--gateway-tls-key-file", gwCert.KeyFile)
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
		s.gatewayRefusals(t, gwCAs, "vanilla-fn")
		waitFor(t, time.Minute, "the Function's URL", func(ctx context.Context) (bool, error) {
			url, _ := s.kubectl(t, "get", "function", "vanilla-fn", "-o", "jsonpath={.status.url}")
			return url == "https://vanilla-fn.default.localhost:28088/", nil
		})
		s.kubectl(t, "delete", "function", "vanilla-fn", "--wait=false")

		// Metrics need credentials here too.
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: tr}).Get("https://127.0.0.1:29464/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("anonymous GET /metrics of strata extensions: HTTP %d, want 401", resp.StatusCode)
		}
	})
}

// waitAnswer waits for a Function to answer with want through the gateway
// at addr (host:port), for the Function's host name.
func waitAnswer(t *testing.T, addr, host, want string) {
	t.Helper()
	waitAnswerFrom(t, &http.Client{Timeout: 30 * time.Second}, "http://"+addr, host, want)
}

// waitAnswerFrom is waitAnswer with a client of the caller's (TLS,
// credentials) for the gateway at base (scheme://host:port).
func waitAnswerFrom(t *testing.T, client *http.Client, base, host, want string) {
	t.Helper()
	var last string
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
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
	t.Fatalf("%s did not answer %q through the gateway at %s within 2m; last answer: %s", host, want, base, last)
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

// gatewayCert is a serving certificate for the gateway at 127.0.0.1 and
// *.default.localhost, from a CA of the test's, and that CA as a pool.
func gatewayCert(t *testing.T) (pki.Paths, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(dir, "ca", "e2e-gateway-ca")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(dir, pki.Cert{Name: "gateway", CommonName: "strata-gateway", DNSNames: []string{"*.default.localhost"},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return cert, pool
}

// gatewayRefusals checks a gateway started with --gateway-auth kubernetes
// and TLS on 127.0.0.1:28088: plain HTTP, anonymous callers and a token
// without the right are refused; once RBAC grants functions/invoke, the
// same token gets the function's answer.
func (s *server) gatewayRefusals(t *testing.T, cas *x509.CertPool, fn string) {
	t.Helper()
	const base = "https://127.0.0.1:28088"
	host := fn + ".default.localhost"
	s.mustKubectl(t, "create", "serviceaccount", "fn-caller", "-n", "default")
	token := strings.TrimSpace(s.mustKubectl(t, "create", "token", "fn-caller", "-n", "default"))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cas}}
	defer tr.CloseIdleConnections()
	ask := func(scheme, bearerToken string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, scheme+"://127.0.0.1:28088/", nil)
		req.Host = host
		if bearerToken != "" {
			req.Header.Set("Authorization", "Bearer "+bearerToken)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: tr}).Do(req)
		if err != nil {
			t.Fatalf("GET %s://%s/: %v", scheme, host, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, string(b)
	}
	if code, body := ask("http", ""); code != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS gateway: %d %s, want 400", code, body)
	}
	if code, body := ask("https", ""); code != http.StatusUnauthorized {
		t.Errorf("anonymous call: %d %s, want 401", code, body)
	}
	want := `"system:serviceaccount:default:fn-caller" cannot create functions/invoke.serving.strata.dev "` + fn + `" in namespace default`
	if code, body := ask("https", token); code != http.StatusForbidden || !strings.Contains(body, want) {
		t.Errorf("call without the right: %d %s, want 403 with %q", code, body, want)
	}
	applyYAML(t, s, `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: invoke-functions, namespace: default}
rules: [{apiGroups: [serving.strata.dev], resources: [functions/invoke], verbs: [create]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: fn-caller-invokes, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: invoke-functions}
subjects: [{kind: ServiceAccount, name: fn-caller, namespace: default}]
`)
	// A denial is cached for 10 s; the grant shows within that.
	waitAnswerFrom(t, &http.Client{Timeout: 30 * time.Second, Transport: &bearer{token: token, rt: tr}}, base, host, "hello from another cluster")
}

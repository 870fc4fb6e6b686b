package e2e

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Issue 22: `strata agent` makes a multi-node cluster. A server and two
// agents, each agent a "host" of its own (network namespace, data dir,
// containerd, kubelet, cgroup root), joined with tokens: three Ready
// nodes, a Deployment spread over them, Service traffic by DNS name
// between pods on different nodes, kubectl logs and exec on an agent's
// pod; bad joins refused with a message that says why.
func TestAgents(t *testing.T) {
	tn := newTestNet(t, "strtest0", "10.251.0")
	s := ownServer(t, "strata-e2e-agents-", []string{"--node-ip", tn.RootIP(), "--node-name", "server"}, nil)
	ctx := context.Background()
	token := strings.TrimSpace(strata(t, "token", "create", "--ttl", "1h", "--data-dir", s.dataDir))
	serverURL := "https://" + tn.RootIP() + ":6443"

	h1, h2 := tn.addHost(t, "sh1"), tn.addHost(t, "sh2")
	t.Cleanup(func() {
		for _, h := range []*host{h1, h2} {
			h.stop(t)
			if leaks := h.leftovers(); len(leaks) > 0 {
				t.Errorf("agent %s left behind:\n%s", h.name, strings.Join(leaks, "\n"))
			}
		}
	})

	t.Run("bad joins are refused with a message that says why", func(t *testing.T) {
		// A malformed token: refused before anything starts.
		out, err := runOut(bin("strata"), "agent", "--server", serverURL, "--token", "strata1:sha256:abc:nope", "--data-dir", t.TempDir())
		if err == nil || !strings.Contains(out, "the CA hash is not 64 hex digits") {
			t.Errorf("malformed token: %v\n%s", err, out)
		}
		// A CA pin of another cluster, and a token the server does not
		// know: the agent says which and retries.
		wrongCA := "strata1:sha256:" + strings.Repeat("ab", 32) + token[strings.LastIndex(token, ":"):]
		unknown := token[:strings.LastIndex(token, ":")+1] + "abcdef.0123456789abcdef"
		for _, c := range []struct{ name, token, want string }{
			{"wrong CA", wrongCA, "but the join token pins sha256:abab"},
			{"unknown or expired token", unknown, "the server refused join token abcdef: it expired or was deleted"},
		} {
			h := tn.addHost(t, "sbad"+string(rune('a'+len(tn.hosts))))
			h.start(t, "--server", serverURL, "--token", c.token, "--join-backoff-max", "1s")
			defer func() {
				if t.Failed() {
					t.Logf("agent %s (%s):\n%s", h.name, c.name, h.out.String())
				}
			}()
			waitFor(t, 60*time.Second, c.name+" refused twice", func(context.Context) (bool, error) {
				return strings.Count(h.out.String(), c.want) >= 2 && strings.Contains(h.out.String(), "retrying in"), nil
			})
			h.stop(t)
		}
	})

	t.Run("two agents join: three Ready nodes", func(t *testing.T) {
		h1.start(t, "--server", serverURL, "--token", token)
		h2.start(t, "--server", serverURL, "--token", token, "--labels", "strata.dev/e2e=agent")
		waitFor(t, 3*time.Minute, "three Ready nodes", func(ctx context.Context) (bool, error) {
			nodes, err := s.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, nil
			}
			ready := 0
			for _, n := range nodes.Items {
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
			return ready == 3, nil
		})
		n2, err := s.client.CoreV1().Nodes().Get(ctx, "sh2", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n2.Labels["strata.dev/e2e"] != "agent" || n2.Spec.PodCIDR == "" {
			t.Errorf("node sh2: labels %v, pod CIDR %q: want the --labels and a pod range", n2.Labels, n2.Spec.PodCIDR)
		}
	})
	if t.Failed() {
		t.Logf("agent sh1:\n%s\nagent sh2:\n%s", h1.out.String(), h2.out.String())
		t.FailNow()
	}

	t.Run("a Deployment spreads over the nodes and pods reach a Service on other nodes by name", func(t *testing.T) {
		s.mustKubectl(t, "apply", "-f", "../../examples/image-policy.yaml")
		pushOwnImage(t, s, "hello", "localhost:5000/hello:v1", "--port", "8080", "--user", "65532")
		pushOwnImage(t, s, "netcheck", "localhost:5000/netcheck:e2e")
		s.mustKubectl(t, "apply", "-f", "../../examples/hello/deploy.yaml")
		s.mustKubectl(t, "scale", "deployment/hello", "--replicas=6")
		// Spread: one per node at least, as the default topology spreading
		// of the scheduler does.
		s.mustKubectl(t, "rollout", "status", "deployment/hello", "--timeout=180s")
		pods, err := s.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=hello"})
		if err != nil {
			t.Fatal(err)
		}
		perNode := map[string]int{}
		for _, p := range pods.Items {
			perNode[p.Spec.NodeName]++
		}
		if len(perNode) != 3 {
			t.Fatalf("hello pods per node: %v, want all three nodes used", perNode)
		}
		// netcheck on an agent asks the Service three times by DNS name;
		// the answers come from pods across the nodes.
		s.netcheckOn(t, "sh1", "dns-client", "hello from Strata: pod hello-", "http://hello.default.svc.cluster.local")
	})

	t.Run("kubectl logs and exec reach a pod on an agent", func(t *testing.T) {
		pods, err := s.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=hello", FieldSelector: "spec.nodeName=sh2"})
		if err != nil || len(pods.Items) == 0 {
			t.Fatalf("no hello pod on sh2: %v", err)
		}
		name := pods.Items[0].Name
		if out := s.mustKubectl(t, "logs", name); out == "" {
			t.Errorf("kubectl logs %s: empty", name)
		}
		// A second /hello in the pod says where it would listen (and then
		// finds the port taken): output from inside the container.
		if out, _ := s.kubectl(t, "exec", name, "--", "/hello"); !strings.Contains(out, "hello listening on") {
			t.Errorf("kubectl exec %s -- /hello: %s", name, out)
		}
		addr := freePort(t)
		port := addr[strings.LastIndex(addr, ":")+1:]
		pf := exec.Command(bin("strata"), "kubectl", "--data-dir", s.dataDir, "port-forward", "pod/"+name, port+":8080")
		if err := pf.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = pf.Process.Kill(); _ = pf.Wait() }()
		waitFor(t, 30*time.Second, "port-forward to "+name, func(context.Context) (bool, error) {
			resp, err := http.Get("http://" + addr + "/")
			if err != nil {
				return false, nil
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode == 200 && strings.Contains(string(body), "pod "+name), nil
		})
	})
}

// pushOwnImage pushes an image to s's registry signed with s's key.
func pushOwnImage(t *testing.T, s *server, binary, ref string, extra ...string) {
	t.Helper()
	pushUnsignedImage(t, binary, ref, extra...)
	strata(t, "image", "sign", "--cluster-key", "--data-dir", s.dataDir, ref)
}

// runOut runs a command and returns its combined output.
func runOut(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

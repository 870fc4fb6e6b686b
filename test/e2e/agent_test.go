package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/test/testpods"
)

// Issue 22: `strata agent` makes a multi-node cluster. A server and two
// agents, each agent a "host" of its own (network namespace, data dir,
// containerd, kubelet, cgroup root), joined with tokens: three Ready
// nodes, a Deployment spread over them, Service traffic by DNS name
// between pods on different nodes, kubectl logs and exec on an agent's
// pod; bad joins refused with a message that says why.
func TestAgents(t *testing.T) {
	tn := newTestNet(t, "strtest0", "10.251.0")
	// A short grace, so that the node-loss case takes seconds, not the
	// upstream minutes.
	s := ownServer(t, "strata-e2e-agents-", []string{"--node-ip", tn.RootIP(), "--node-name", "server",
		"--node-monitor-grace", nodeMonitorGrace.String(), "--node-grace", "10s"}, nil)
	ctx := context.Background()
	token := strings.TrimSpace(strata(t, "token", "create", "--ttl", "1h", "--data-dir", s.dataDir))
	serverURL := "https://" + tn.RootIP() + ":6443"

	h1, h2 := tn.addHost(t, "sh1"), tn.addHost(t, "sh2")
	// sh2 tunnels all its pods' traffic to other nodes (VXLAN) while the
	// others route to it directly: both paths, and a mix, carry the
	// traffic below.
	h2Args := []string{"--server", serverURL, "--token", token, "--labels", "strata.dev/e2e=agent", "--vxlan", "always"}
	t.Cleanup(func() {
		for _, h := range []*host{h1, h2} {
			if t.Failed() {
				// CI keeps only the log: the agent's own account of a
				// failed rollout (image pulls, registration) is in here.
				t.Logf("agent %s, last lines:\n%s", h.name, lastLines(h.out.String(), 60))
			}
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
		h1.start(t, "--server", serverURL, "--token", token, "--simulated-gpus", "1xA100-80GB")
		h2.start(t, h2Args...)
		s.waitNodesReady(t, 3)
		n2, err := s.client.CoreV1().Nodes().Get(ctx, "sh2", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n2.Labels["strata.dev/e2e"] != "agent" || n2.Spec.PodCIDR == "" {
			t.Errorf("node sh2: labels %v, pod CIDR %q: want the --labels and a pod range", n2.Labels, n2.Spec.PodCIDR)
		}
		// Routes to the two other nodes' ranges: host-gw on sh1, through
		// the tunnel on sh2.
		for _, c := range []struct {
			host, want string
			n          int
		}{{"sh1", "via 10.251.0.", 2}, {"sh2", "dev strata.vxlan", 2}} {
			waitFor(t, 30*time.Second, c.host+"'s routes to the other nodes' pods", func(context.Context) (bool, error) {
				out, _ := runOut("ip", "-n", c.host, "route", "show", "proto", "83")
				return strings.Count(out, c.want) == c.n, nil
			})
		}
	})
	if t.Failed() {
		t.Logf("agent sh1:\n%s\nagent sh2:\n%s", h1.out.String(), h2.out.String())
		t.FailNow()
	}

	t.Run("the registry's network listener serves Kubernetes users with RBAC rights only", func(t *testing.T) {
		s.registryRefusals(t, tn.RootIP())
	})

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
		s.netcheckOn(t, "sh2", "dns-client-tunnelled", "hello from Strata: pod hello-", "http://hello.default.svc.cluster.local")
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

	t.Run("an agent's simulated GPU is shared by pods and a wasm pod runs on an agent", func(t *testing.T) {
		waitFor(t, 60*time.Second, "sh1's ResourceSlice", func(ctx context.Context) (bool, error) {
			slices, err := s.client.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=sh1"})
			return err == nil && len(slices.Items) == 1 && len(slices.Items[0].Spec.Devices) == 1, nil
		})
		// The agent's GPU is the cluster's only one: the scheduler must
		// place both shares there, on one device.
		s.gpuTemplate(t, "share-250", "250", "")
		devices := map[string]bool{}
		for _, name := range []string{"agent-share-1", "agent-share-2"} {
			s.gpuPod(t, name, "share-250", "", "")
			env := s.podEnv(t, name)
			p, err := s.client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Spec.NodeName != "sh1" || env["STRATA_GPU_COMPUTE_MILLI"] != "250" {
				t.Errorf("%s on %q sees %v: want node sh1 and a 250m share", name, p.Spec.NodeName, env)
			}
			devices[env["NVIDIA_VISIBLE_DEVICES"]] = true
		}
		if len(devices) != 1 {
			t.Errorf("two shares on devices %v, want one GPU", devices)
		}
		s.deleteGPUPods(t)

		strata(t, "image", "build", "--wasm", bin("wasm-hello.wasm"), "-t", "localhost:5000/wasm-hello:e2e", "--push")
		strata(t, "image", "sign", "--cluster-key", "--data-dir", s.dataDir, "localhost:5000/wasm-hello:e2e")
		pod := wasmPod("agent-wasm", "localhost:5000/wasm-hello:e2e", nil)
		pod.Spec.NodeName = "sh2"
		if _, err := s.client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 60*time.Second, "the wasm pod on sh2 to succeed", func(ctx context.Context) (bool, error) {
			p, err := s.client.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if p.Status.Phase == corev1.PodFailed {
				return false, fmt.Errorf("wasm pod failed: %s", describeContainer(p))
			}
			return p.Status.Phase == corev1.PodSucceeded, nil
		})
		if logs := s.mustKubectl(t, "logs", pod.Name); !strings.Contains(logs, "hello from wasm") {
			t.Errorf("kubectl logs %s:\n%s", pod.Name, logs)
		}
		s.mustKubectl(t, "delete", "pod", pod.Name)
	})

	t.Run("pods on the agents keep serving each other while the server is down", func(t *testing.T) {
		// hello-edge runs on sh2 only; a probe on sh1 asks its Service
		// (by ClusterIP: cluster DNS may live on the server's node) twice
		// a second, and prints one line per request.
		svcIP := s.deployOn(t, "hello-edge", "strata.dev/e2e", "agent", 2)
		probe := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "edge-probe", Namespace: "default"},
			Spec: restricted(corev1.PodSpec{
				NodeName: "sh1",
				Containers: []corev1.Container{{Name: "probe", Image: "localhost:5000/netcheck:e2e",
					Args: []string{"--probe", "500ms", "--expect", "hello from Strata", "http://" + svcIP + "/"}}},
			}),
		}
		if _, err := s.client.CoreV1().Pods("default").Create(ctx, probe, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if t.Failed() {
				t.Logf("network state:\n%s", netState("sh1", "sh2"))
				out, _ := s.kubectl(t, "logs", probe.Name)
				t.Logf("probe:\n%s", out)
				out, _ = s.kubectl(t, "get", "pods", "-o", "wide")
				t.Logf("pods:\n%s", out)
			}
		}()
		waitFor(t, 60*time.Second, "the probe's first answers", func(context.Context) (bool, error) {
			out, _ := s.kubectl(t, "logs", probe.Name)
			return strings.Count(out, " ok") >= 3, nil
		})
		marker := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before-outage", Namespace: "default"}, Data: map[string]string{"k": "v"}}
		if _, err := s.client.CoreV1().ConfigMaps("default").Create(ctx, marker, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		before := agentPods(t, s)

		down := time.Now()
		if err := s.stop(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(60 * time.Second)
		if err := s.start(); err != nil {
			t.Fatalf("restart the server: %v", err)
		}
		up := time.Now()
		t.Logf("server down for %s", up.Sub(down).Round(time.Second))

		logs := s.mustKubectl(t, "logs", probe.Name)
		ok, failed, window := 0, []string{}, []string{}
		for _, line := range strings.Split(logs, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			ms, err := strconv.ParseInt(f[0], 10, 64)
			if at := time.UnixMilli(ms); err != nil || at.Before(down) || at.After(up) {
				continue
			}
			window = append(window, line)
			if f[1] == "ok" {
				ok++
			} else {
				failed = append(failed, line)
			}
		}
		t.Logf("during the outage: %d requests answered, %d failed", ok, len(failed))
		// 60 s at two a second: 120, less what a loaded machine delays.
		if len(failed) > 0 || ok < 100 {
			t.Errorf("during the outage (%d to %d) %d requests were answered and %d failed, want >= 100 and none:\n%s",
				down.UnixMilli(), up.UnixMilli(), ok, len(failed), strings.Join(window, "\n"))
			t.Logf("agent sh1:\n%s", h1.out.String())
			files, _ := filepath.Glob(filepath.Join(h1.dataDir, "*", "*edge-probe*", "probe", "*.log"))
			files2, _ := filepath.Glob(filepath.Join(h1.dataDir, "*", "*", "*edge-probe*", "probe", "*.log"))
			for _, f := range append(files, files2...) {
				raw, _ := os.ReadFile(f)
				t.Logf("%s:\n%s", f, raw)
			}
			t.Logf("kubectl logs:\n%s", logs)
		}
		if _, err := s.client.CoreV1().ConfigMaps("default").Get(ctx, marker.Name, metav1.GetOptions{}); err != nil {
			t.Errorf("a ConfigMap written before the outage: %v", err)
		}
		// The agents' pods are the same pods, never restarted.
		after := agentPods(t, s)
		for uid, was := range before {
			if now, found := after[uid]; !found || now != was {
				t.Errorf("agent pod %s: %s before the outage, %q after", uid, was, now)
			}
		}
		s.waitNodesReady(t, 3)
		s.mustKubectl(t, "delete", "pod", probe.Name, "--grace-period=0")
		s.mustKubectl(t, "delete", "deployment", "hello-edge")
	})

	t.Run("a lost node's pods move to the others and it comes back under its name", func(t *testing.T) {
		n2, err := s.client.CoreV1().Nodes().Get(ctx, "sh2", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		lost := time.Now()
		h2.crash(t)
		waitFor(t, 2*nodeMonitorGrace, "sh2 NotReady", func(ctx context.Context) (bool, error) {
			n, err := s.client.CoreV1().Nodes().Get(ctx, "sh2", metav1.GetOptions{})
			return err == nil && !nodeReady(n), nil
		})
		t.Logf("sh2 NotReady %s after the crash (--node-monitor-grace %s)", time.Since(lost).Round(time.Second), nodeMonitorGrace)
		waitFor(t, 2*time.Minute, "six hello pods Ready on the other nodes", func(ctx context.Context) (bool, error) {
			pods, err := s.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=hello"})
			if err != nil {
				return false, nil
			}
			ready := 0
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil && p.Spec.NodeName != "sh2" && testpods.Ready(&p) {
					ready++
				}
			}
			return ready == 6, nil
		})
		t.Logf("hello back to six Ready replicas %s after the crash", time.Since(lost).Round(time.Second))

		h2.start(t, h2Args...)
		s.waitNodesReady(t, 3)
		back, err := s.client.CoreV1().Nodes().Get(ctx, "sh2", metav1.GetOptions{})
		if err != nil || back.UID != n2.UID {
			t.Errorf("after the restart node sh2 is %v (%v), want the same Node %s", back.UID, err, n2.UID)
		}
		// The lost pods, deleted while sh2 was away, are finished off by its
		// kubelet once it is back.
		waitFor(t, 2*time.Minute, "no pod left on sh2 from before the crash", func(ctx context.Context) (bool, error) {
			pods, err := s.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=sh2"})
			return err == nil && len(pods.Items) == 0, nil
		})
	})
}

// netState describes the hosts' pod routing, for a failure's log.
func netState(hosts ...string) string {
	var b strings.Builder
	for _, h := range hosts {
		for _, args := range [][]string{
			{"-d", "-s", "link", "show", "strata.vxlan"}, {"neigh", "show", "dev", "strata.vxlan"}, {"route"},
		} {
			out, _ := runOut("ip", append([]string{"-n", h}, args...)...)
			fmt.Fprintf(&b, "%s: ip %s\n%s\n", h, strings.Join(args, " "), out)
		}
		out, _ := runOut("bridge", "-n", h, "fdb", "show", "dev", "strata.vxlan")
		fmt.Fprintf(&b, "%s: bridge fdb\n%s\n", h, out)
		out, _ = runOut("ip", "netns", "exec", h, "sh", "-c", "grep . /proc/sys/net/ipv4/conf/*/rp_filter; iptables -S FORWARD; iptables -t nat -S POSTROUTING")
		fmt.Fprintf(&b, "%s: sysctl, iptables\n%s\n", h, out)
	}
	return b.String()
}

// nodeMonitorGrace is the e2e server's --node-monitor-grace.
const nodeMonitorGrace = 20 * time.Second

// deployOn runs hello with replicas on the nodes labelled key=value,
// behind a Service of the same name, and returns the Service's ClusterIP.
func (s *server) deployOn(t *testing.T, name, key, value string, replicas int32) string {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: restricted(corev1.PodSpec{
					NodeSelector: map[string]string{key: value},
					Containers: []corev1.Container{{Name: "hello", Image: "localhost:5000/hello:v1",
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 1}}},
				}),
			},
		},
	}
	if _, err := s.client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	created, err := s.client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.mustKubectl(t, "rollout", "status", "deployment/"+name, "--timeout=120s")
	return created.Spec.ClusterIP
}

// agentPods maps the UID of every pod on a node other than "server" to its
// node and container restart counts.
func agentPods(t *testing.T, s *server) map[types.UID]string {
	t.Helper()
	pods, err := s.client.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[types.UID]string{}
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" || p.Spec.NodeName == "server" || p.Status.Phase != corev1.PodRunning {
			continue
		}
		desc := p.Namespace + "/" + p.Name + " on " + p.Spec.NodeName + " restarts"
		for _, c := range p.Status.ContainerStatuses {
			desc += fmt.Sprintf(" %s=%d", c.Name, c.RestartCount)
		}
		out[p.UID] = desc
	}
	return out
}

// waitNodesReady waits for n Ready nodes.
func (s *server) waitNodesReady(t *testing.T, n int) {
	t.Helper()
	waitFor(t, 3*time.Minute, fmt.Sprintf("%d Ready nodes", n), func(ctx context.Context) (bool, error) {
		nodes, err := s.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		ready := 0
		for i := range nodes.Items {
			if nodeReady(&nodes.Items[i]) {
				ready++
			}
		}
		return ready == n, nil
	})
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
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

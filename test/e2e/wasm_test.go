package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/pkg/wasm/wasmtest"
)

// The WebAssembly issue's acceptance 1-4 against the real server:
// RuntimeClass wasm pods run on containerd-shim-strata-wasm-v1.
func TestWasmPods(t *testing.T) {
	s := cluster(t)
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "trap.wasm"), wasmtest.Trap, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "invalid.wasm"), wasmtest.Invalid, 0o644); err != nil {
		t.Fatal(err)
	}
	pushWasm(t, bin("wasm-hello.wasm"), "localhost:5000/wasm-hello:e2e")
	pushWasm(t, bin("wasm-http.wasm"), "localhost:5000/wasm-http:e2e", "--http-port", "8080")
	pushWasm(t, filepath.Join(dir, "trap.wasm"), "localhost:5000/wasm-trap:e2e")
	pushWasm(t, filepath.Join(dir, "invalid.wasm"), "localhost:5000/wasm-invalid:e2e")
	pushImage(t, "netcheck", "localhost:5000/netcheck:e2e")
	// Serves through every subtest: bad modules must not disturb it.
	s.deployWasmHTTP(t, 2)

	t.Run("command pods report logs and exit codes", func(t *testing.T) {
		ok := s.runWasmPod(t, "wasm-ok", "localhost:5000/wasm-hello:e2e", nil, nil)
		if ok.Status.Phase != corev1.PodSucceeded {
			t.Fatalf("wasm-ok: %s %s", ok.Status.Phase, describeContainer(ok))
		}
		if logs := s.mustKubectl(t, "logs", "wasm-ok"); !strings.Contains(logs, `hello from wasm: args=[]`) {
			t.Fatalf("kubectl logs wasm-ok:\n%s", logs)
		}
		failed := s.runWasmPod(t, "wasm-exit3", "localhost:5000/wasm-hello:e2e", []string{"exit", "3"}, nil)
		if term := failed.Status.ContainerStatuses[0].State.Terminated; failed.Status.Phase != corev1.PodFailed || term == nil || term.ExitCode != 3 {
			t.Fatalf("wasm-exit3: %s %s", failed.Status.Phase, describeContainer(failed))
		}
		if logs := s.mustKubectl(t, "logs", "wasm-exit3"); !strings.Contains(logs, "exiting with 3") {
			t.Fatalf("stderr missing from kubectl logs:\n%s", logs)
		}
	})

	t.Run("a Job with runtimeClassName wasm succeeds", func(t *testing.T) {
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "wasm-job", Namespace: "default"},
			Spec: batchv1.JobSpec{BackoffLimit: ptr.To[int32](0), Template: corev1.PodTemplateSpec{Spec: wasmSpec(corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "job", Image: "localhost:5000/wasm-hello:e2e", Env: []corev1.EnvVar{{Name: "GREETING", Value: "from a Job"}}}},
			})}},
		}
		if _, err := s.client.BatchV1().Jobs("default").Create(ctx, job, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.kubectl(t, "delete", "job", "wasm-job", "--wait=false") })
		waitFor(t, 60*time.Second, "the wasm Job to succeed", func(ctx context.Context) (bool, error) {
			j, err := s.client.BatchV1().Jobs("default").Get(ctx, job.Name, metav1.GetOptions{})
			return err == nil && j.Status.Succeeded == 1, err
		})
		if logs := s.mustKubectl(t, "logs", "job/wasm-job"); !strings.Contains(logs, "greeting: from a Job") {
			t.Fatalf("job logs:\n%s", logs)
		}
	})

	t.Run("an HTTP Deployment behind a Service answers by DNS name and scales to 20", func(t *testing.T) {
		s.netcheck(t, "wasm-client", "hello from wasm: GET /", "http://wasm-http.default.svc.cluster.local/")
		s.scaleWasmHTTP(t, 20)
	})

	t.Run("bad modules show a clear reason and leave other pods alone", func(t *testing.T) {
		cases := []struct {
			name, image string
			args        []string
			tweak       func(*corev1.Container)
			want        func(cs corev1.ContainerStatus) bool
			desc        string
		}{
			{name: "wasm-invalid", image: "localhost:5000/wasm-invalid:e2e", desc: "invalid wasm module in the status",
				want: func(cs corev1.ContainerStatus) bool { return strings.Contains(statusText(cs), "invalid wasm module") }},
			{name: "wasm-trap", image: "localhost:5000/wasm-trap:e2e", desc: "exit 134 with a Trap message",
				want: func(cs corev1.ContainerStatus) bool {
					return cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 134 && strings.Contains(cs.State.Terminated.Message, "Trap: wasm module trapped")
				}},
			{name: "wasm-oom", image: "localhost:5000/wasm-hello:e2e", args: []string{"alloc", "200"}, desc: "OOMKilled",
				tweak: func(c *corev1.Container) {
					c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
				},
				want: func(cs corev1.ContainerStatus) bool {
					return cs.State.Terminated != nil && cs.State.Terminated.Reason == "OOMKilled" && cs.State.Terminated.ExitCode == 137
				}},
			{name: "wasm-deadline", image: "localhost:5000/wasm-hello:e2e", args: []string{"loop"}, desc: "exit 124, DeadlineExceeded",
				tweak: func(c *corev1.Container) { c.Env = []corev1.EnvVar{{Name: "STRATA_WASM_RUN_TIMEOUT", Value: "2s"}} },
				want: func(cs corev1.ContainerStatus) bool {
					return cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 124 && strings.Contains(cs.State.Terminated.Message, "DeadlineExceeded")
				}},
		}
		for _, tc := range cases {
			pod := wasmPod(tc.name, tc.image, tc.args)
			if tc.tweak != nil {
				tc.tweak(&pod.Spec.Containers[0])
			}
			if _, err := s.client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.kubectl(t, "delete", "pod", tc.name, "--wait=false") })
		}
		for _, tc := range cases {
			var last corev1.ContainerStatus
			ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			for ctx.Err() == nil {
				p, err := s.client.CoreV1().Pods("default").Get(ctx, tc.name, metav1.GetOptions{})
				if err == nil && len(p.Status.ContainerStatuses) > 0 {
					last = p.Status.ContainerStatuses[0]
					if tc.want(last) {
						break
					}
				}
				time.Sleep(250 * time.Millisecond)
			}
			cancel()
			if !tc.want(last) {
				t.Errorf("%s: want %s, got %s", tc.name, tc.desc, statusText(last))
			}
		}
		// The HTTP pods kept serving through all this.
		s.netcheck(t, "wasm-client-after", "hello from wasm", "http://wasm-http.default.svc.cluster.local/")
	})

	t.Run("a pod whose image is a CNCF wasm OCI artifact runs", func(t *testing.T) {
		ref := "localhost:5000/wasm-hello-artifact:e2e"
		strata(t, "image", "build", "--wasm", bin("wasm-hello.wasm"), "--artifact", "-t", ref, "--push")
		strata(t, "image", "sign", "--cluster-key", "--data-dir", shared.dataDir, ref)
		// An artifact has no entrypoint: the pod names the program, which
		// becomes the module's argv[0].
		pod := wasmPod("wasm-artifact", ref, nil)
		pod.Spec.Containers[0].Command = []string{"wasm-hello"}
		if _, err := s.client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.kubectl(t, "delete", "pod", pod.Name, "--wait=false") })
		waitFor(t, 60*time.Second, "the artifact pod to succeed", func(ctx context.Context) (bool, error) {
			p, err := s.client.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
			if err == nil && p.Status.Phase == corev1.PodFailed {
				t.Fatalf("artifact pod failed: %s", describeContainer(p))
			}
			return err == nil && p.Status.Phase == corev1.PodSucceeded, err
		})
		if logs := s.mustKubectl(t, "logs", pod.Name); !strings.Contains(logs, "hello from wasm: args=[]") {
			t.Fatalf("kubectl logs wasm-artifact:\n%s", logs)
		}
	})

	t.Run("kubectl exec and checkpoints of a wasm pod say not supported", func(t *testing.T) {
		pods, err := s.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=wasm-http"})
		if err != nil || len(pods.Items) == 0 {
			t.Fatalf("no wasm-http pod: %v", err)
		}
		name := pods.Items[0].Name
		start := time.Now()
		out, err := s.kubectl(t, "exec", name, "--request-timeout=30s", "--", "ls")
		if err == nil || !strings.Contains(out, "exec is not supported for wasm") {
			t.Errorf("kubectl exec into a wasm pod: %v\n%s", err, out)
		}
		if took := time.Since(start); took > 15*time.Second {
			t.Errorf("kubectl exec took %s to fail", took)
		}
		out2, err := exec.Command(bin("strata"), "checkpoint", name, "--data-dir", shared.dataDir).CombinedOutput()
		if err == nil || !strings.Contains(string(out2), "checkpoint not supported for wasm containers") {
			t.Errorf("strata checkpoint of a wasm pod: %v\n%s", err, out2)
		}
		// The kubelet's own API, past the CLI's check, reaches the shim.
		raw := "/api/v1/nodes/" + pods.Items[0].Spec.NodeName + "/proxy/checkpoint/default/" + name + "/http"
		out3, err := s.kubectl(t, "create", "--raw", raw, "-f", "/dev/null")
		if err == nil || !strings.Contains(out3, "not supported") {
			t.Errorf("kubelet checkpoint of a wasm container: %v\n%s", err, out3)
		}
	})

	t.Run("deleting wasm pods leaves no shim", func(t *testing.T) {
		s.mustKubectl(t, "delete", "deployment", "wasm-http", "--wait=true")
		s.mustKubectl(t, "delete", "pod", "-l", "wasm-e2e=true", "--wait=true")
		s.mustKubectl(t, "delete", "job", "wasm-job", "--ignore-not-found", "--wait=true")
		waitFor(t, 60*time.Second, "every wasm shim to exit", func(ctx context.Context) (bool, error) {
			pods, err := s.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			for _, p := range pods.Items {
				if p.Spec.RuntimeClassName != nil {
					return false, nil
				}
			}
			return len(wasmShims()) == 0, nil
		})
	})
}

func pushWasm(t *testing.T, module, ref string, extra ...string) {
	t.Helper()
	strata(t, append([]string{"image", "build", "--wasm", module, "-t", ref, "--push"}, extra...)...)
	strata(t, "image", "sign", "--cluster-key", "--data-dir", shared.dataDir, ref)
}

// wasmSpec makes spec a restricted-compliant wasm pod spec.
func wasmSpec(spec corev1.PodSpec) corev1.PodSpec {
	spec = restricted(spec)
	spec.RuntimeClassName = ptr.To("wasm")
	return spec
}

func wasmPod(name, image string, args []string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"wasm-e2e": "true"}},
		Spec: wasmSpec(corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "app", Image: image, Args: args}},
		}),
	}
}

// runWasmPod runs a command pod to completion and returns it.
func (s *server) runWasmPod(t *testing.T, name, image string, args []string, env []corev1.EnvVar) *corev1.Pod {
	t.Helper()
	pod := wasmPod(name, image, args)
	pod.Spec.Containers[0].Env = env
	if _, err := s.client.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.kubectl(t, "delete", "pod", name, "--wait=false") })
	var got *corev1.Pod
	waitFor(t, 60*time.Second, "pod "+name+" to finish", func(ctx context.Context) (bool, error) {
		p, err := s.client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = p
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed, nil
	})
	return got
}

func (s *server) deployWasmHTTP(t *testing.T, replicas int32) {
	t.Helper()
	labels := map[string]string{"app": "wasm-http"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "wasm-http", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: wasmSpec(corev1.PodSpec{
				Containers: []corev1.Container{{
					Name: "http", Image: "localhost:5000/wasm-http:e2e",
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
						PeriodSeconds: 1},
				}},
			})},
		},
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "wasm-http", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	ctx := context.Background()
	if _, err := s.client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.kubectl(t, "delete", "service", "wasm-http", "--ignore-not-found")
		s.kubectl(t, "delete", "deployment", "wasm-http", "--ignore-not-found", "--wait=false")
	})
	s.waitReady(t, "wasm-http", replicas)
}

func (s *server) scaleWasmHTTP(t *testing.T, replicas int32) {
	t.Helper()
	s.mustKubectl(t, "scale", "deployment/wasm-http", fmt.Sprintf("--replicas=%d", replicas))
	s.waitReady(t, "wasm-http", replicas)
}

func (s *server) waitReady(t *testing.T, deployment string, replicas int32) {
	t.Helper()
	waitFor(t, 3*time.Minute, fmt.Sprintf("%d ready replicas of %s", replicas, deployment), func(ctx context.Context) (bool, error) {
		d, err := s.client.AppsV1().Deployments("default").Get(ctx, deployment, metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == replicas, err
	})
}

// netcheck runs the netcheck client in a (runc) pod against url three
// times and fails the test unless every answer contains expect.
func (s *server) netcheck(t *testing.T, name, expect, url string) {
	t.Helper()
	s.netcheckOn(t, "", name, expect, url)
}

// netcheckOn is netcheck on the named node ("": any).
func (s *server) netcheckOn(t *testing.T, node, name, expect, url string) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: restricted(corev1.PodSpec{
			NodeName:      node,
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "netcheck", Image: "localhost:5000/netcheck:e2e",
				Args: []string{"--timeout", "60s", "--count", "3", "--expect", expect, url}}},
		}),
	}
	if _, err := s.client.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.kubectl(t, "delete", "pod", name, "--wait=false") })
	var phase corev1.PodPhase
	waitFor(t, 90*time.Second, name+" to finish", func(ctx context.Context) (bool, error) {
		p, err := s.client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		phase = p.Status.Phase
		return phase == corev1.PodSucceeded || phase == corev1.PodFailed, nil
	})
	if phase != corev1.PodSucceeded {
		t.Fatalf("%s %s; logs:\n%s", name, phase, s.mustKubectl(t, "logs", name))
	}
}

func statusText(cs corev1.ContainerStatus) string {
	var b strings.Builder
	for _, st := range []corev1.ContainerState{cs.State, cs.LastTerminationState} {
		if w := st.Waiting; w != nil {
			fmt.Fprintf(&b, "waiting %s: %s; ", w.Reason, w.Message)
		}
		if x := st.Terminated; x != nil {
			fmt.Fprintf(&b, "terminated %s exit %d: %s; ", x.Reason, x.ExitCode, x.Message)
		}
	}
	return b.String()
}

func describeContainer(p *corev1.Pod) string {
	if len(p.Status.ContainerStatuses) == 0 {
		return "no container status"
	}
	return statusText(p.Status.ContainerStatuses[0])
}

// wasmShims lists running wasm shim processes (the shim and its pause
// children).
func wasmShims() []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(raw), "containerd-shim-strata-wasm-v1") {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(raw), "\x00", " "))
		}
	}
	return out
}

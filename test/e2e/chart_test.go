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

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/pkg/layout"
	"github.com/strata-dev/strata/pkg/registry"
	"github.com/strata-dev/strata/pkg/registry/registrytest"
)

// helmChart installs deploy/strata (through Helm's Go SDK, test/helmtool)
// on s, a vanilla server, with an image of this build's strata; checks that
// enforced holds and that a container Function answers through the
// chart's gateway Service; uninstalls, and checks that nothing the
// extensions created is left.
func (s *server) helmChart(t *testing.T, enforced func(t *testing.T, policyName, reg string)) {
	ctx := context.Background()
	// The extensions run in a pod, where localhost:5000 (the server's
	// loopback registry) is not the node's: their images come from a
	// registry on the node's bridge address, as a real cluster's come from
	// a registry its pods and nodes reach. containerd pulls it over plain
	// HTTP through a hosts.toml, as the server does for its own.
	reg := podRegistry(t, s)
	const ns, release = "strata-ext", "e2e"
	const name = release + "-strata"
	image := "localhost:5000/strata:e2e"
	strata(t, "image", "build", "--binary", bin("strata"), "--with-libs", "-t", image, "--push")
	// The extensions' own pod must start even when their webhooks are down.
	// The GPU driver's pods are privileged (host paths).
	if _, err := s.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{"security.strata.dev/image-policy": "exempt", "pod-security.kubernetes.io/enforce": "privileged"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(s.dataDir, "admin.kubeconfig")
	helm := func(args ...string) string {
		t.Helper()
		args = append(args[:1:1], append([]string{"--kubeconfig", kubeconfig, "--namespace", ns, "--name", release}, args[1:]...)...)
		out, err := exec.Command(bin("helmtool"), args...).CombinedOutput()
		if err != nil {
			logs, _ := s.kubectl(t, "logs", "-n", ns, "deploy/"+name, "--tail=40")
			t.Fatalf("helmtool %s: %v\n%s\nextensions' log:\n%s", strings.Join(args, " "), err, out, logs)
		}
		return string(out)
	}
	// Bad input: no image says what to set, and installs nothing.
	out, err := exec.Command(bin("helmtool"), "install", "--kubeconfig", kubeconfig, "--namespace", ns, "--name", release, "../../deploy/strata").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "set image: an image whose entrypoint is the strata binary") {
		t.Fatalf("install without an image: %v\n%s", err, out)
	}
	// The wasm shim installer puts the shim in shimDir (a server's
	// containerd also finds it next to itself) and its drop-in where the
	// server's containerd imports drop-ins.
	shimImage, shimDir := "localhost:5000/strata-wasm-shim:e2e", t.TempDir()
	s.mustKubectl(t, "label", "nodes", "--all", "strata.dev/wasm=true")
	strata(t, "image", "build", "--binary", bin("containerd-shim-strata-wasm-v1"), "-t", shimImage, "--push")
	// The GPU driver DaemonSet, with the node's own kubelet and CDI
	// directories (a vanilla server keeps them under its data and run dirs).
	l, err := layout.New(s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	helm("install", "--set", "image="+image, "--set", "gpuDriver.enabled=true", "--set", "gpuDriver.simulatedGPUs=1xA100-80GB",
		"--set", "gpuDriver.kubeletDir="+l.KubeletDir(), "--set", "gpuDriver.cdiDir="+l.CDIDir(),
		"--set", "gpuDriver.stateDir="+filepath.Join(s.dataDir, "gpu-driver"),
		"--set", "wasmShim.enabled=true", "--set", "wasmShim.image="+shimImage, "--set", "wasmShim.binDir="+shimDir,
		"--set", "wasmShim.confDir="+l.ContainerdConfDir(), "--set", "wasmShim.containerdConfig="+l.ContainerdConfig(),
		"../../deploy/strata")
	t.Cleanup(func() {
		if t.Failed() {
			for _, args := range [][]string{
				{"get", "function,deploy,pods,events", "-A", "-o", "wide"},
				{"logs", "-n", ns, "deploy/" + name, "--tail=60"},
			} {
				out, _ := s.kubectl(t, args...)
				t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out)
			}
		}
	})
	waitFor(t, time.Minute, "the chart's extensions to register their webhooks", func(ctx context.Context) (bool, error) {
		h, err := s.client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "strata-image-policy", metav1.GetOptions{})
		return err == nil && h.Webhooks[0].ClientConfig.Service != nil && h.Webhooks[0].ClientConfig.Service.Namespace == ns, nil
	})

	enforced(t, "pod-registry", reg)

	// The chart's second scheduler, with Strata's plugins, places a pod
	// that names it.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "by-strata-gpu", Namespace: "default"},
		Spec: restricted(corev1.PodSpec{SchedulerName: "strata-gpu", Containers: []corev1.Container{{Name: "hello", Image: reg + "/hello:signed"}}})}
	if _, err := s.client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "the pod placed by the strata-gpu scheduler to run", func(ctx context.Context) (bool, error) {
		p, err := s.client.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	})
	events, err := s.client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod.Name + ",reason=Scheduled"})
	if err != nil || len(events.Items) == 0 || (events.Items[0].ReportingController != "strata-gpu" && events.Items[0].Source.Component != "strata-gpu") {
		t.Fatalf("Scheduled event of %s: %+v %v, want it from strata-gpu", pod.Name, events, err)
	}
	s.mustKubectl(t, "delete", "pod", pod.Name, "--wait=false")

	s.chartGPUDriver(t, reg)
	s.chartWasmShim(t, shimDir, l)

	// A container Function scales from zero behind the chart's gateway.
	gw, err := s.client.CoreV1().Services(ns).Get(ctx, name+"-gateway", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	applyYAML(t, s, functionYAML("chart-fn", reg+"/hello:signed", "container", "hello from the chart"))
	waitAnswer(t, fmt.Sprintf("%s:%d", gw.Spec.ClusterIP, gw.Spec.Ports[0].Port), "chart-fn.default.localhost", "hello from the chart: pod chart-fn-")

	// A Function's Deployment is the garbage collector's to delete; once
	// the CRD is gone the collector cannot resolve its owner's kind and
	// keeps it, so Functions go first, as NOTES.txt tells users.
	s.mustKubectl(t, "delete", "function", "chart-fn")
	waitFor(t, time.Minute, "the Function's Deployment collected", func(ctx context.Context) (bool, error) {
		_, err := s.client.AppsV1().Deployments("default").Get(ctx, "chart-fn", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	helm("uninstall")
	var logged string
	waitFor(t, 2*time.Minute, "nothing of the chart left", func(ctx context.Context) (bool, error) {
		left := s.chartLeftovers(t, ctx, ns)
		// Logged when it changes, so a timeout shows what stayed.
		if now := fmt.Sprint(left); len(left) > 0 && now != logged {
			t.Logf("still there: %s", now)
			logged = now
		}
		return len(left) == 0, nil
	})
	// The installer undid what it did when its pod stopped.
	waitFor(t, time.Minute, "the wasm installer to clean up the node", func(ctx context.Context) (bool, error) {
		_, binErr := os.Stat(filepath.Join(shimDir, "containerd-shim-strata-wasm-v1"))
		_, confErr := os.Stat(filepath.Join(l.ContainerdConfDir(), "strata-wasm.toml"))
		return os.IsNotExist(binErr) && os.IsNotExist(confErr), nil
	})
	s.mustKubectl(t, "label", "nodes", "--all", "strata.dev/wasm-")
	if err := s.client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// chartWasmShim checks the chart's wasm installer: on the node labelled for
// wasm (by the test, as a user would, before the install), the node's
// containerd gets the wasm runtime (a vanilla server's has none) and a wasm
// pod runs.
func (s *server) chartWasmShim(t *testing.T, shimDir string, l layout.Layout) {
	ctx := context.Background()
	waitFor(t, 2*time.Minute, "the wasm installer to place the shim and its containerd drop-in", func(ctx context.Context) (bool, error) {
		_, binErr := os.Stat(filepath.Join(shimDir, "containerd-shim-strata-wasm-v1"))
		raw, _ := os.ReadFile(filepath.Join(l.ContainerdConfDir(), "strata-wasm.toml"))
		return binErr == nil && strings.Contains(string(raw), "io.containerd.strata-wasm.v1"), nil
	})
	// The image policy is not what this checks: a namespace exempt from it.
	const wns = "wasm-chart"
	if _, err := s.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: wns,
		Labels: map[string]string{"security.strata.dev/image-policy": "exempt"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer s.kubectl(t, "delete", "namespace", wns, "--wait=false")
	image := "localhost:5000/wasm-hello:chart"
	strata(t, "image", "build", "--wasm", bin("wasm-hello.wasm"), "-t", image, "--push")
	pod := wasmPod("wasm-on-chart", image, nil)
	pod.Namespace = wns
	if _, err := s.client.CoreV1().Pods(wns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// containerd is restarting after the drop-in: the kubelet retries.
	waitFor(t, 2*time.Minute, "the wasm pod to succeed on the chart's runtime", func(ctx context.Context) (bool, error) {
		p, err := s.client.CoreV1().Pods(wns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodFailed {
			t.Fatalf("wasm pod failed: %s", describeContainer(p))
		}
		return err == nil && p.Status.Phase == corev1.PodSucceeded, err
	})
	if logs := s.mustKubectl(t, "logs", "-n", wns, pod.Name); !strings.Contains(logs, "hello from wasm") {
		t.Fatalf("wasm pod logs:\n%s", logs)
	}
}

// chartGPUDriver checks the chart's GPU driver DaemonSet: it publishes the
// node's (simulated) GPU, and a pod whose claim the default scheduler
// allocates gets the GPU's environment through CDI, applied by the node's
// containerd.
func (s *server) chartGPUDriver(t *testing.T, reg string) {
	ctx := context.Background()
	waitFor(t, 2*time.Minute, "the chart's GPU driver to publish a ResourceSlice", func(ctx context.Context) (bool, error) {
		l, err := s.client.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{FieldSelector: "spec.driver=gpu.strata.dev"})
		return err == nil && len(l.Items) == 1 && len(l.Items[0].Spec.Devices) == 1, nil
	})
	claim := &resourcev1.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Name: "chart-gpu", Namespace: "default"},
		Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
			Name: "gpu", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: "gpu.strata.dev"}}}}}}
	if _, err := s.client.ResourceV1().ResourceClaims("default").Create(ctx, claim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "chart-gpu-pod", Namespace: "default"},
		Spec: restricted(corev1.PodSpec{
			ResourceClaims: []corev1.PodResourceClaim{{Name: "gpu", ResourceClaimName: ptr.To(claim.Name)}},
			Containers: []corev1.Container{{Name: "main", Image: reg + "/hello:signed",
				Resources: corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "gpu"}}}}},
		})}
	if _, err := s.client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	env := s.podEnv(t, pod.Name)
	if env["STRATA_GPU_DEVICES"] != "gpu-0" || env["STRATA_GPU_BACKEND"] != "simulated" || env["NVIDIA_VISIBLE_DEVICES"] == "" {
		t.Fatalf("GPU environment of a pod on the chart's driver: %v", env)
	}
	s.mustKubectl(t, "delete", "pod", pod.Name, "--grace-period=0")
	s.mustKubectl(t, "delete", "resourceclaim", claim.Name)
}

// chartLeftovers lists what the chart and its extensions created that
// still exists.
func (s *server) chartLeftovers(t *testing.T, ctx context.Context, ns string) []string {
	var left []string
	add := func(kind string, names []string, keep func(string) bool) {
		for _, n := range names {
			if keep(n) {
				left = append(left, kind+" "+n)
			}
		}
	}
	strataName := func(n string) bool { return strings.Contains(n, "strata") }
	if l, err := s.client.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{}); err == nil {
		add("ValidatingWebhookConfiguration", namesOf(l.Items), strataName)
	}
	if l, err := s.client.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{}); err == nil {
		add("MutatingWebhookConfiguration", namesOf(l.Items), strataName)
	}
	if l, err := s.client.NodeV1().RuntimeClasses().List(ctx, metav1.ListOptions{}); err == nil {
		add("RuntimeClass", namesOf(l.Items), func(string) bool { return true })
	}
	if l, err := s.client.ResourceV1().DeviceClasses().List(ctx, metav1.ListOptions{}); err == nil {
		add("DeviceClass", namesOf(l.Items), func(string) bool { return true })
	}
	if l, err := s.client.SchedulingV1().PriorityClasses().List(ctx, metav1.ListOptions{}); err == nil {
		add("PriorityClass", namesOf(l.Items), strataName)
	}
	if l, err := s.client.AdmissionregistrationV1().MutatingAdmissionPolicies().List(ctx, metav1.ListOptions{}); err == nil {
		add("MutatingAdmissionPolicy", namesOf(l.Items), func(string) bool { return true })
	}
	if l, err := s.client.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{}); err == nil {
		// The server's own registry roles are not the chart's.
		add("ClusterRole", namesOf(l.Items), func(n string) bool { return strataName(n) && !strings.HasPrefix(n, "strata:registry:") })
	}
	if l, err := s.client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{}); err == nil {
		add("Deployment", namesOf(l.Items), func(string) bool { return true })
	}
	if l, err := s.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
		add("Pod", namesOf(l.Items), func(string) bool { return true })
	}
	if out, err := s.kubectl(t, "get", "crd", "-o", "name"); err == nil {
		add("CRD", strings.Fields(out), func(n string) bool { return strings.HasSuffix(n, ".strata.dev") })
	}
	return left
}

// namesOf lists the names of API objects.
func namesOf[T any, P interface {
	*T
	GetName() string
}](items []T) []string {
	out := make([]string, 0, len(items))
	for i := range items {
		out = append(out, P(&items[i]).GetName())
	}
	return out
}

// podRegistry runs an OCI registry on the node's bridge address for the
// rest of the test and tells s's containerd to pull from it over HTTP.
func podRegistry(t *testing.T, s *server) string {
	t.Helper()
	addr := registrytest.StartAt(t, "10.88.0.1:5001")
	if err := registry.WriteContainerdHosts(layout.Layout{DataDir: s.dataDir}.RegistryHostsDir(), addr, "http://"+addr); err != nil {
		t.Fatal(err)
	}
	return addr
}

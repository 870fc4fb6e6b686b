package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// The security issue's acceptance 1-4 and 6 against the real server: the
// ClusterImagePolicy webhook verifies signatures at admission. Images here
// are named 127.0.0.1:5000/... so that the demo's policy for
// localhost:5000/** (cluster key) does not apply to them as well.
func TestImagePolicy(t *testing.T) {
	s := cluster(t)
	keys := t.TempDir()
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(bin("strata"), args...)
		cmd.Dir = keys
		cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=e2e")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	mustCLI := func(args ...string) {
		t.Helper()
		if out, err := cli(args...); err != nil {
			t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	mustCLI("keys", "generate", "--output-prefix", "old")
	mustCLI("keys", "generate", "--output-prefix", "new")
	pem := func(name string) string {
		b, err := os.ReadFile(filepath.Join(keys, name+".pub"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	down := freePort(t) // a registry that does not answer
	s.applyPolicy(t, "e2e-team", "enforce", []string{"127.0.0.1:5000/e2e-team/**"}, pem("old"), pem("new"))
	s.applyPolicy(t, "e2e-offline", "enforce", []string{down + "/enforced/**"}, pem("old"))
	s.applyPolicy(t, "e2e-offline-warn", "warn", []string{down + "/warned/**"}, pem("old"))
	t.Cleanup(func() {
		s.kubectl(t, "delete", "clusterimagepolicy", "e2e-team", "e2e-offline", "e2e-offline-warn", "e2e-broken", "--ignore-not-found")
	})

	app := "127.0.0.1:5000/e2e-team/app:v1"
	pushUnsignedImage(t, "hello", app, "--port", "8080", "--user", "65532")

	t.Run("unsigned image is rejected with a message that says what to do", func(t *testing.T) {
		out, err := s.applyPod(t, "unsigned", app)
		if err == nil {
			t.Fatalf("unsigned pod admitted:\n%s", out)
		}
		for _, want := range []string{"127.0.0.1:5000/e2e-team/app@sha256:", `ClusterImagePolicy "e2e-team"`, "no signatures found", "strata image sign --key"} {
			if !strings.Contains(out, want) {
				t.Errorf("rejection lacks %q:\n%s", want, out)
			}
		}
	})

	var verified string
	t.Run("signed image is admitted and runs the verified digest", func(t *testing.T) {
		mustCLI("image", "sign", "--key", "old.key", app)
		if out, err := s.applyPod(t, "signed", app); err != nil {
			t.Fatalf("signed pod rejected: %v\n%s", err, out)
		}
		pod := s.waitPodRunning(t, "signed")
		verified = pod.Spec.Containers[0].Image
		if !strings.HasPrefix(verified, "127.0.0.1:5000/e2e-team/app@sha256:") {
			t.Fatalf("pod image %q was not pinned to a digest", verified)
		}
		digest := verified[strings.Index(verified, "@")+1:]
		if id := pod.Status.ContainerStatuses[0].ImageID; !strings.HasSuffix(id, digest) {
			t.Fatalf("container runs %s, admission verified %s", id, digest)
		}
	})

	t.Run("re-pushing another image under the signed tag is rejected", func(t *testing.T) {
		pushUnsignedImage(t, "netcheck", app)
		out, err := s.applyPod(t, "repushed", app)
		if err == nil {
			t.Fatalf("re-pushed tag admitted:\n%s", out)
		}
		if !strings.Contains(out, `ClusterImagePolicy "e2e-team"`) || strings.Contains(out, verified) {
			t.Fatalf("unexpected rejection:\n%s", out)
		}
	})

	t.Run("workloads with unsigned images are rejected at apply time", func(t *testing.T) {
		unsigned := "127.0.0.1:5000/e2e-team/unsigned:v1"
		pushUnsignedImage(t, "hello", unsigned)
		for _, obj := range workloads(unsigned) {
			kind := obj.GetObjectKind().GroupVersionKind().Kind
			out, err := s.applyObject(t, obj)
			if err == nil {
				t.Errorf("%s with an unsigned image admitted:\n%s", kind, out)
				continue
			}
			if !strings.Contains(out, `denied the request`) || !strings.Contains(out, "e2e-team/unsigned") || !strings.Contains(out, "template.spec.containers[app].image") {
				t.Errorf("%s rejection unclear:\n%s", kind, out)
			}
		}
		if rs, err := s.client.AppsV1().ReplicaSets("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=e2e-unsigned"}); err != nil || len(rs.Items) != 0 {
			t.Fatalf("a ReplicaSet exists for the rejected Deployment: %v %v", rs, err)
		}
	})

	t.Run("key rotation: either key of the policy is accepted", func(t *testing.T) {
		rotated := "127.0.0.1:5000/e2e-team/rotated:v1"
		pushUnsignedImage(t, "hello", rotated, "--port", "8080", "--user", "65532")
		mustCLI("image", "sign", "--key", "new.key", rotated)
		if out, err := s.applyPod(t, "rotated", rotated); err != nil {
			t.Fatalf("image signed with the second key rejected: %v\n%s", err, out)
		}
	})

	t.Run("registry unreachable fails closed", func(t *testing.T) {
		out, err := s.applyPod(t, "offline", down+"/enforced/app:v1")
		if err == nil {
			t.Fatalf("pod admitted while its registry is down:\n%s", out)
		}
		for _, want := range []string{"registry unreachable", "connection refused", `ClusterImagePolicy "e2e-offline" fails closed`} {
			if !strings.Contains(out, want) {
				t.Errorf("rejection lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("warn mode admits with a warning kubectl prints", func(t *testing.T) {
		out, err := s.applyPod(t, "warned", down+"/warned/app:v1")
		if err != nil {
			t.Fatalf("warn-mode pod rejected: %v\n%s", err, out)
		}
		want := fmt.Sprintf(`Warning: image %s/warned/app:v1 fails ClusterImagePolicy "e2e-offline-warn" (warn mode, admitted): registry unreachable`, down)
		if !strings.Contains(out, want) {
			t.Fatalf("kubectl output lacks the warning %q:\n%s", want, out)
		}
	})

	t.Run("images no policy covers are denied by default", func(t *testing.T) {
		out, err := s.applyPod(t, "unmatched", "127.0.0.1:5000/nobody/app:v1")
		if err == nil || !strings.Contains(out, "matches no ClusterImagePolicy") {
			t.Fatalf("unmatched image: %v\n%s", err, out)
		}
	})

	t.Run("system images are signed and covered by the default policy", func(t *testing.T) {
		pub := filepath.Join(s.dataDir, "signing", "cosign.pub")
		mustCLI("image", "verify", "--key", pub, "localhost:5000/strata/pause:3.10")
		s.waitPolicyReady(t, "strata-system-images")
	})

	t.Run("malformed policies are refused with a precise message", func(t *testing.T) {
		cases := []struct {
			name string
			spec string
			want []string
		}{
			{"bad glob and PEM", "images: [{glob: 'r.io/[abc'}]\nauthorities: [{key: {data: 'not a key'}}]",
				[]string{"spec.images[0].glob", "unterminated character class '['", "spec.authorities[0].key.data", "not a PEM file"}},
			{"private key pasted", "images: [{glob: 'r.io/**'}]\nauthorities: [{key: {data: \"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\\nAA==\\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\\n\"}}]",
				[]string{"spec.authorities[0].key.data", "not the private key"}},
			{"unknown mode", "images: [{glob: 'r.io/**'}]\nmode: audit\nauthorities: [{key: {secretRef: {namespace: a, name: b}}}]",
				[]string{"spec.mode", `Unsupported value: "audit"`}},
			{"two key sources", "images: [{glob: 'r.io/**'}]\nauthorities: [{key: {data: x, secretRef: {namespace: a, name: b}}}]",
				[]string{"set exactly one of key.data"}},
			{"no images", "images: []\nauthorities: [{key: {secretRef: {namespace: a, name: b}}}]",
				[]string{"spec.images", "at least 1 items"}},
		}
		for _, tc := range cases {
			manifest := "apiVersion: security.strata.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: e2e-bad}\nspec:\n  " + strings.ReplaceAll(tc.spec, "\n", "\n  ") + "\n"
			out, err := s.kubectlStdin(t, manifest, "apply", "-f", "-")
			if err == nil {
				t.Errorf("%s: policy accepted:\n%s", tc.name, out)
				continue
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("%s: message lacks %q:\n%s", tc.name, w, out)
				}
			}
		}
	})

	t.Run("a policy whose key Secret is missing reports it and fails closed", func(t *testing.T) {
		manifest := `apiVersion: security.strata.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: e2e-broken}
spec:
  images: [{glob: "127.0.0.1:5000/e2e-broken/**"}]
  authorities: [{key: {secretRef: {namespace: default, name: no-such-secret}}}]
`
		if out, err := s.kubectlStdin(t, manifest, "apply", "-f", "-"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		waitFor(t, 30*time.Second, "e2e-broken to report the missing Secret", func(ctx context.Context) (bool, error) {
			out, _ := s.kubectl(t, "get", "clusterimagepolicy", "e2e-broken", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].reason}/{.status.conditions[?(@.type=="Ready")].message}`)
			return strings.HasPrefix(out, "KeyNotFound/") && strings.Contains(out, "secret default/no-such-secret not found"), nil
		})
		pushUnsignedImage(t, "hello", "127.0.0.1:5000/e2e-broken/app:v1")
		if out, err := s.applyPod(t, "broken", "127.0.0.1:5000/e2e-broken/app:v1"); err == nil || !strings.Contains(out, "no key of the policy could be loaded") {
			t.Fatalf("image under a broken policy: %v\n%s", err, out)
		}
	})
}

// applyPolicy creates or updates a ClusterImagePolicy with inline keys and
// waits until it is Ready.
func (s *server) applyPolicy(t *testing.T, name, mode string, globs []string, pems ...string) {
	t.Helper()
	var images, authorities []any
	for _, g := range globs {
		images = append(images, map[string]any{"glob": g})
	}
	for _, p := range pems {
		authorities = append(authorities, map[string]any{"key": map[string]any{"data": p}})
	}
	obj := map[string]any{
		"apiVersion": "security.strata.dev/v1alpha1", "kind": "ClusterImagePolicy",
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"images": images, "authorities": authorities, "mode": mode},
	}
	if out, err := s.applyObject(t, obj); err != nil {
		t.Fatalf("apply policy %s: %v\n%s", name, err, out)
	}
	s.waitPolicyReady(t, name)
}

func (s *server) waitPolicyReady(t *testing.T, name string) {
	t.Helper()
	waitFor(t, 30*time.Second, "ClusterImagePolicy "+name+" Ready", func(ctx context.Context) (bool, error) {
		out, _ := s.kubectl(t, "get", "clusterimagepolicy", name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return out == "True", nil
	})
}

// applyPod applies a restricted-compliant pod in default with kubectl, so
// the output is what a user sees (warnings included).
func (s *server) applyPod(t *testing.T, name, image string) (string, error) {
	t.Helper()
	t.Cleanup(func() { s.kubectl(t, "delete", "pod", name, "--ignore-not-found", "--wait=false") })
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       restricted(corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}),
	}
	return s.applyObject(t, pod)
}

func (s *server) applyObject(t *testing.T, obj any) (string, error) {
	t.Helper()
	data, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return s.kubectlStdin(t, string(data), "apply", "-f", "-")
}

func (s *server) kubectlStdin(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin("strata"), append([]string{"kubectl", "--data-dir", s.dataDir}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *server) waitPodRunning(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	waitFor(t, 90*time.Second, "pod "+name+" Running", func(ctx context.Context) (bool, error) {
		p, err := s.client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pod = p
		return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].ImageID != "", nil
	})
	return pod
}

// workloads returns one object of each kind with a pod template, all
// running image, restricted-compliant.
func workloads(image string) []runtime.Object {
	labels := map[string]string{"app": "e2e-unsigned"}
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       restricted(corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}),
	}
	job := tmpl.DeepCopy()
	job.Spec.RestartPolicy = corev1.RestartPolicyNever
	meta := func(kind, apiVersion string) (metav1.TypeMeta, metav1.ObjectMeta) {
		return metav1.TypeMeta{Kind: kind, APIVersion: apiVersion}, metav1.ObjectMeta{Name: "e2e-unsigned-" + strings.ToLower(kind), Namespace: "default"}
	}
	sel := &metav1.LabelSelector{MatchLabels: labels}
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Selector: sel, Template: tmpl}}
	d.TypeMeta, d.ObjectMeta = meta("Deployment", "apps/v1")
	ss := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Selector: sel, Template: tmpl}}
	ss.TypeMeta, ss.ObjectMeta = meta("StatefulSet", "apps/v1")
	ds := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Selector: sel, Template: tmpl}}
	ds.TypeMeta, ds.ObjectMeta = meta("DaemonSet", "apps/v1")
	rs := &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Selector: sel, Template: tmpl}}
	rs.TypeMeta, rs.ObjectMeta = meta("ReplicaSet", "apps/v1")
	j := &batchv1.Job{Spec: batchv1.JobSpec{Template: *job}}
	j.TypeMeta, j.ObjectMeta = meta("Job", "batch/v1")
	cj := &batchv1.CronJob{Spec: batchv1.CronJobSpec{Schedule: "@hourly", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: *job}}}}
	cj.TypeMeta, cj.ObjectMeta = meta("CronJob", "batch/v1")
	return []runtime.Object{d, ss, ds, rs, j, cj}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

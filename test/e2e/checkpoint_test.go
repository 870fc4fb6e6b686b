package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Issue 21, acceptance 3 and 4: `strata checkpoint` of a running container
// writes an archive; a pod whose image is that archive, pushed as a
// checkpoint image, continues counting where the original was; bad input
// says what is wrong.
func TestCheckpoint(t *testing.T) {
	s := cluster(t)
	ctx := context.Background()
	pushImage(t, "counter", "localhost:5000/counter:e2e")
	// criu reads the rlimits of the process it dumps, which needs
	// CAP_SYS_RESOURCE unless it runs as the same user; the machines this
	// suite runs on lack that capability, so the counter runs as root, in
	// a namespace whose Pod Security level (baseline) allows it.
	s.mustKubectl(t, "create", "namespace", ckptNS)
	s.mustKubectl(t, "label", "namespace", ckptNS, "pod-security.kubernetes.io/enforce=baseline")
	t.Cleanup(func() { s.kubectl(t, "delete", "namespace", ckptNS, "--wait=false") })

	t.Run("a restored counter continues from its checkpoint", func(t *testing.T) {
		s.runCounter(t, "counter", "localhost:5000/counter:e2e")
		waitFor(t, 30*time.Second, "counter to count to 20", func(ctx context.Context) (bool, error) {
			return lastLine(s.podLogs(t, "counter")).n >= 20, nil
		})
		before := lastLine(s.podLogs(t, "counter")).n
		out := strata(t, "checkpoint", "counter", "-n", ckptNS, "--data-dir", s.dataDir, "--push", "localhost:5000/counter-ckpt:e2e")
		orig := lastLine(s.podLogs(t, "counter"))
		after := orig.n
		archive := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
		if st, err := os.Stat(archive); err != nil || st.Size() == 0 {
			t.Fatalf("strata checkpoint printed %q: %v", out, err)
		}
		t.Cleanup(func() { os.Remove(archive) })
		if !strings.Contains(out, "pushed checkpoint image localhost:5000/counter-ckpt@sha256:") {
			t.Fatalf("no pushed image in:\n%s", out)
		}
		strata(t, "image", "sign", "--cluster-key", "--data-dir", s.dataDir, "localhost:5000/counter-ckpt:e2e")
		// The original keeps counting; stop it so only the restored one does.
		s.mustKubectl(t, "delete", "pod", "counter", "-n", ckptNS, "--grace-period=0")

		s.runCounter(t, "counter-restored", "localhost:5000/counter-ckpt:e2e")
		var last line
		waitFor(t, 60*time.Second, "the restored counter to count past "+strconv.Itoa(after+10), func(ctx context.Context) (bool, error) {
			last = lastLine(s.podLogs(t, "counter-restored"))
			return last.n > after+10, nil
		})
		// A restored process keeps the run ID it drew at start and goes
		// on counting; a fresh one would draw a new ID and count from 1.
		if last.run != orig.run {
			t.Fatalf("the restored counter prints run %s, the original printed run %s: it started afresh", last.run, orig.run)
		}
		t.Logf("run %s: checkpoint taken between %d and %d; the restored process counted on to %d", orig.run, before, after, last.n)
	})

	t.Run("bad input says what is wrong", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"no-such-pod"}, `pods "no-such-pod" not found`},
			{[]string{"counter-restored", "-c", "nope"}, `has no container "nope"; its containers are count`},
		} {
			out, err := exec.Command(bin("strata"), append([]string{"checkpoint", "-n", ckptNS, "--data-dir", s.dataDir}, tc.args...)...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Errorf("strata checkpoint %v: %v\n%s\nwant %q", tc.args, err, out, tc.want)
			}
		}
		if _, err := s.client.CoreV1().Pods(ckptNS).Get(ctx, "counter-restored", metav1.GetOptions{}); err != nil {
			t.Fatalf("the restored counter is gone: %v", err)
		}
	})
}

// ckptNS holds the checkpoint test's pods.
const ckptNS = "checkpoint-e2e"

// runCounter starts a counter pod in ckptNS and waits until it runs.
func (s *server) runCounter(t *testing.T, name, image string) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ckptNS},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers:                    []corev1.Container{{Name: "count", Image: image}},
		},
	}
	if _, err := s.client.CoreV1().Pods(ckptNS).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.kubectl(t, "delete", "pod", name, "-n", ckptNS, "--wait=false", "--ignore-not-found") })
	waitFor(t, 90*time.Second, "pod "+name+" to run", func(ctx context.Context) (bool, error) {
		p, err := s.client.CoreV1().Pods(ckptNS).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
			strings.Contains(p.Status.ContainerStatuses[0].State.Waiting.Reason, "Err") {
			t.Fatalf("pod %s: %s", name, describeContainer(p))
		}
		return p.Status.Phase == corev1.PodRunning, nil
	})
}

func (s *server) podLogs(t *testing.T, name string) string {
	t.Helper()
	out, _ := s.kubectl(t, "logs", name, "-n", ckptNS)
	return out
}

// line is one line of the counter's output: its run ID and count.
type line struct {
	run string
	n   int
}

// lastLine is the counter's last complete line (zero when none).
func lastLine(logs string) line {
	rows := strings.Split(strings.TrimSpace(logs), "\n")
	for i := len(rows) - 1; i >= 0; i-- {
		f := strings.Fields(rows[i])
		if len(f) != 2 {
			continue
		}
		if n, err := strconv.Atoi(f[1]); err == nil {
			return line{run: f[0], n: n}
		}
	}
	return line{}
}

// Acceptance 4: a node without criu says which package to install. The
// server's PATH is every program of the usual PATH but criu.
func TestCheckpointWithoutCriu(t *testing.T) {
	s := ownServer(t, "strata-e2e-nocriu-", nil, []string{"PATH=" + pathWithout(t, "criu")})
	ref := "localhost:5000/counter:nocriu"
	strata(t, "image", "build", "--binary", bin("counter"), "-t", ref, "--push")
	strata(t, "image", "sign", "--cluster-key", "--data-dir", s.dataDir, ref)
	s.mustKubectl(t, "apply", "-f", "../../examples/image-policy.yaml")
	s.mustKubectl(t, "create", "namespace", ckptNS)
	s.mustKubectl(t, "label", "namespace", ckptNS, "pod-security.kubernetes.io/enforce=baseline")
	s.runCounter(t, "counter", ref)
	out, err := exec.Command(bin("strata"), "checkpoint", "counter", "-n", ckptNS, "--data-dir", s.dataDir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "criu") || !strings.Contains(string(out), "install the criu package") {
		t.Fatalf("strata checkpoint without criu: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// pathWithout is a directory of links to every program in the usual PATH
// directories except those named.
func pathWithout(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if slices.Contains(names, e.Name()) {
				continue
			}
			// The first directory wins, as in PATH; later ones find the link there.
			_ = os.Symlink(filepath.Join(d, e.Name()), filepath.Join(dir, e.Name()))
		}
	}
	return dir
}

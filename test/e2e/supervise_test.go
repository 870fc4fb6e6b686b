package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Issue 20, acceptance 2, restart policy: containerd killed under a running
// server is restarted and reported on the terminal; the pods it ran keep
// running and new pods start.
func TestContainerdRestartedAfterKill(t *testing.T) {
	s := cluster(t)
	ctx := context.Background()
	if _, err := s.client.AppsV1().Deployments("default").Get(ctx, "hello", metav1.GetOptions{}); err != nil {
		deployHello(t, s)
	}
	s.mustKubectl(t, "rollout", "status", "deployment/hello", "--timeout=120s")
	before := containerdPID(t, s)
	if err := syscall.Kill(before, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the terminal to report containerd's restart", func(context.Context) (bool, error) {
		return strings.Contains(s.out.String(), "containerd exited: containerd (pid "+strconv.Itoa(before)+") exited: signal: killed"), nil
	})
	waitFor(t, 30*time.Second, "a new containerd", func(context.Context) (bool, error) {
		pid := findContainerd(s)
		return pid != 0 && pid != before, nil
	})
	select {
	case <-s.exited:
		t.Fatalf("server exited after containerd was killed:\n%s", s.out.String())
	default:
	}
	// A new pod runs on the restarted containerd.
	scale := func(n int32) {
		d, err := s.client.AppsV1().Deployments("default").Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Spec.Replicas = ptr.To(n)
		if _, err := s.client.AppsV1().Deployments("default").Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	scale(3)
	defer scale(2)
	waitFor(t, 2*time.Minute, "3 ready hello pods after containerd's restart", func(ctx context.Context) (bool, error) {
		d, err := s.client.AppsV1().Deployments("default").Get(ctx, "hello", metav1.GetOptions{})
		return err == nil && deploymentReady(d, 3), nil
	})
}

func deploymentReady(d *appsv1.Deployment, n int32) bool {
	return d.Status.ReadyReplicas == n && d.Status.UpdatedReplicas == n && d.Status.ObservedGeneration == d.Generation
}

// containerdPID is the pid of the server's containerd, which must exist.
func containerdPID(t *testing.T, s *server) int {
	t.Helper()
	pid := findContainerd(s)
	if pid == 0 {
		t.Fatalf("no containerd process for %s", s.dataDir)
	}
	return pid
}

func findContainerd(s *server) int {
	config := filepath.Join(s.dataDir, "containerd", "config.toml")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if len(args) == 3 && filepath.Base(args[0]) == "containerd" && args[2] == config {
			return pid
		}
	}
	return 0
}

// Issue 20, acceptance 2, fatal policy: a component that fails after start
// (here the admission webhooks, through the supervisor's test-only fault
// hook) stops the whole server with one line naming it and a non-zero
// exit, leaving nothing behind. The control plane alone, on other ports,
// so the shared server keeps running.
func TestComponentFailureStopsServer(t *testing.T) {
	dir, err := os.MkdirTemp("", "strata-e2e-fault-")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin("strata"), "server", "--data-dir", dir, "--disable-agent",
		"--https-port", "26443", "--etcd-port", "22379", "--registry-port", "25000", "--webhook-port", "29443",
		"--gateway-port", "28088", "--metrics-port", "29464")
	cmd.Env = append(os.Environ(), "STRATA_TEST_FAULTS=admission-webhooks@8s")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("server still running 2 minutes after the injected fault:\n%s", out.String())
	}
	text := out.String()
	if err == nil {
		t.Fatalf("server exited 0 after a component failed:\n%s", text)
	}
	if !strings.Contains(text, "admin kubeconfig:") {
		t.Fatalf("the fault fired before the server was up:\n%s", text)
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	last := lines[len(lines)-1]
	if want := "strata: admission-webhooks: injected fault (8s after ready); see " + filepath.Join(dir, "logs", "strata.log"); last != want {
		t.Errorf("last line %q, want %q\n%s", last, want, text)
	}
	s := &server{dataDir: dir}
	if leaks := s.ownLeftovers(); len(leaks) > 0 {
		t.Fatalf("left behind after the failure:\n%s", strings.Join(leaks, "\n"))
	}
	if !t.Failed() {
		os.RemoveAll(dir)
	}
}

// Package e2e runs whole-system tests against a real `strata server`:
// real etcd, kube-apiserver, kubelet, containerd, runc and CNI on this
// machine. They need root. The binaries come from STRATA_BIN (a directory
// with strata, strata-pause, hello and netcheck, as `make build` leaves them)
// or are built once by TestMain.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"github.com/strata-dev/strata/pkg/layout"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

var binDir string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: these tests start a real cluster and need root (run `make test` as root)")
		os.Exit(1)
	}
	binDir = os.Getenv("STRATA_BIN")
	if binDir == "" {
		dir, err := os.MkdirTemp("", "strata-e2e-bin-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		if err := buildBinaries(dir); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: build:", err)
			os.Exit(1)
		}
		binDir = dir
	}
	code := m.Run()
	if shared != nil {
		if err := shared.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: stop shared server:", err)
			code = 1
		}
		if leaks := append(shared.leftovers(), podCgroups()...); len(leaks) > 0 {
			fmt.Fprintf(os.Stderr, "e2e: left behind after the server stopped:\n  %s\n", strings.Join(leaks, "\n  "))
			code = 1
		}
		// STRATA_E2E_KEEP=1 keeps the data dir (logs) of a passing run.
		if code == 0 && os.Getenv("STRATA_E2E_KEEP") == "" {
			os.RemoveAll(shared.dataDir)
		}
	}
	os.Exit(code)
}

// buildBinaries builds exactly what `make test-e2e` builds (the binaries,
// and the helm and cosign tools), with the same flags, into dir.
func buildBinaries(dir string) error {
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	cmd := exec.Command("make", "build", "helmtool", "cosigntool", "BIN="+dir)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("make build helmtool cosigntool: %v\n%s", err, out)
	}
	return nil
}

func bin(name string) string { return filepath.Join(binDir, name) }

// server is one `strata server` process on its own data dir.
type server struct {
	dataDir string
	args    []string
	env     []string // added to the environment the server inherits
	cmd     *exec.Cmd
	out     *syncBuffer
	exited  chan struct{}
	client  kubernetes.Interface
	// stopTook is how long the last stop took from SIGTERM to exit.
	stopTook time.Duration
}

// syncBuffer is a server's output, read by tests while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// shared is the server most tests use; started on first use.
var shared *server

// cluster returns the shared running server, starting it if needed.
func cluster(t *testing.T) *server {
	t.Helper()
	if shared == nil {
		dir, err := os.MkdirTemp("", "strata-e2e-")
		if err != nil {
			t.Fatal(err)
		}
		// Two simulated GPUs: the GPU tests share and fill them, and every
		// other pod runs on a node with the GPU driver and CDI on.
		shared = &server{dataDir: dir, args: []string{"--simulated-gpus", "2xA100-80GB"}}
	}
	if shared.cmd == nil {
		if err := shared.start(); err != nil {
			t.Fatalf("start strata server: %v", err)
		}
		// The demo's policy, as make run applies it: images in the
		// embedded registry signed with the cluster key may run.
		shared.mustKubectl(t, "apply", "-f", "../../examples/image-policy.yaml")
	}
	return shared
}

func (s *server) start(extra ...string) error {
	s.out = &syncBuffer{}
	args := append([]string{"server", "--data-dir", s.dataDir}, s.args...)
	s.cmd = exec.Command(bin("strata"), append(args, extra...)...)
	s.cmd.Env = append(os.Environ(), s.env...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.exited = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	kubeconfig := filepath.Join(s.dataDir, "admin.kubeconfig")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		select {
		case <-s.exited:
			return false, fmt.Errorf("server exited: %s", s.out.String())
		default:
		}
		// The server prints this once admission is enforced; a restart
		// finds the previous run's kubeconfig only until it removes it.
		if s.client == nil && !strings.Contains(s.out.String(), "admin kubeconfig: ") {
			return false, nil
		}
		if s.client == nil {
			rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return false, nil
			}
			if s.client, err = kubernetes.NewForConfig(rc); err != nil {
				return false, err
			}
		}
		if !s.nodeReadySince(ctx, time.Now().Add(-2*time.Minute)) {
			return false, nil
		}
		// Pods can be created once the controller manager made the
		// namespace's service account.
		_, err := s.client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("%w\nserver output:\n%s", err, s.out.String())
	}
	return nil
}

// nodeReadySince reports whether a node is Ready with a heartbeat newer than t,
// so a Ready condition left in etcd by an earlier run does not count.
func (s *server) nodeReadySince(ctx context.Context, t time.Time) bool {
	nodes, err := s.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) == 0 {
		return false
	}
	for _, c := range nodes.Items[0].Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && c.LastHeartbeatTime.After(t) {
			return true
		}
	}
	return false
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() error {
	if s.cmd == nil {
		return nil
	}
	defer func() { s.cmd = nil; s.client = nil }()
	start := time.Now()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		s.stopTook = time.Since(start)
	case <-time.After(90 * time.Second):
		_ = s.cmd.Process.Kill()
		return fmt.Errorf("server did not exit within 90s of SIGTERM\n%s", s.out.String())
	}
	if st := s.cmd.ProcessState; st != nil && !st.Success() {
		return fmt.Errorf("server exited with %v after SIGTERM\n%s", st, s.out.String())
	}
	return nil
}

// kubectl runs the embedded kubectl against this server.
func (s *server) kubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin("strata"), append([]string{"kubectl", "--data-dir", s.dataDir}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *server) mustKubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.kubectl(t, args...)
	if err != nil {
		s.logState(t)
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// logState logs where every pod is and the latest events, so a failed wait
// in CI (where only the log survives) says why the pods did not get there.
func (s *server) logState(t *testing.T) {
	t.Helper()
	pods, _ := s.kubectl(t, "get", "pods", "-A", "-o", "wide")
	events, _ := s.kubectl(t, "get", "events", "-A", "--sort-by=.lastTimestamp")
	t.Logf("cluster state at failure:\n%s\nlatest events:\n%s", pods, lastLines(events, 40))
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ownServer starts a server of the test's own on a fresh data dir, in
// place of the shared one (same ports, which it stops first), and stops it
// when the test ends, failing the test on anything left behind. A cleanup,
// not a defer: cleanups the test registers later run first, while the
// server is still up.
func ownServer(t *testing.T, prefix string, args, env []string) *server {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	return ownServerIn(t, dir, args, env)
}

// ownServerIn is ownServer on a data dir the test made (e.g. a small
// file system).
func ownServerIn(t *testing.T, dir string, args, env []string) *server {
	t.Helper()
	if shared != nil {
		if err := shared.stop(); err != nil {
			t.Fatal(err)
		}
	}
	s := &server{dataDir: dir, args: args, env: env}
	if err := s.start(); err != nil {
		t.Fatalf("start strata server %s: %v", strings.Join(args, " "), err)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Error(err)
		}
		if leaks := s.lingering(); len(leaks) > 0 {
			t.Errorf("left behind:\n%s", strings.Join(leaks, "\n"))
		} else if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	return s
}

// lingering is what a stopped server left behind and still holds after
// 10 s: a shim whose task was deleted exits on its own a moment later,
// which is not a leak.
func (s *server) lingering() []string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		leaks := append(s.leftovers(), podCgroups()...)
		if len(leaks) == 0 || time.Now().After(deadline) {
			return leaks
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// podCgroups lists the kubelet's pod cgroups: none may be left once the
// only node server has stopped.
func podCgroups() []string {
	var leaks []string
	for _, pattern := range []string{"/sys/fs/cgroup/*/kubepods/pod*", "/sys/fs/cgroup/*/kubepods/*/pod*"} {
		dirs, _ := filepath.Glob(pattern)
		for _, d := range dirs {
			leaks = append(leaks, "cgroup "+d)
		}
	}
	return leaks
}

// leftovers lists what a stopped server must not leave behind: processes
// of its containerd (containerd itself, shims and their containers) or of
// its data dir, mounts under the data dir, and its run dir. It counts every pod
// process and shim of any Strata node: no other node may run meanwhile.
func (s *server) leftovers() []string { return s.findLeftovers(false) }

// ownLeftovers is leftovers while another node server runs: only processes
// that name this server's data dir or run dir, and its mounts.
func (s *server) ownLeftovers() []string { return s.findLeftovers(true) }

func (s *server) findLeftovers(own bool) []string {
	runDir := layout.Layout{DataDir: s.dataDir}.RunDir()
	var leaks []string
	if mounts, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(mounts), "\n") {
			if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], s.dataDir+"/") {
				leaks = append(leaks, "mount "+f[4])
			}
		}
	}
	// Every start rebuilds the run dir; a stopped node removes it.
	if _, err := os.Stat(runDir); err == nil {
		leaks = append(leaks, "run dir "+runDir)
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		cmdline := strings.ReplaceAll(strings.TrimRight(string(raw), "\x00"), "\x00", " ")
		cgroup, _ := os.ReadFile(filepath.Join("/proc", pid, "cgroup"))
		switch {
		case strings.Contains(cmdline, s.dataDir), strings.Contains(cmdline, runDir):
			leaks = append(leaks, pid+": "+cmdline)
		case own:
		case strings.Contains(cmdline, "containerd-shim") && strings.Contains(cmdline, "/run/strata/"),
			strings.Contains(cmdline, "containerd-shim-strata-wasm-v1 pause"):
			leaks = append(leaks, pid+": "+cmdline)
		case strings.Contains(string(cgroup), "kubepods"):
			leaks = append(leaks, pid+": "+cmdline+" (in kubepods cgroup)")
		}
	}
	return leaks
}

// pushImage builds an image from one of our static binaries, pushes it to
// the shared server's registry and signs it with the cluster key, as a
// developer following the README does.
func pushImage(t *testing.T, binary, ref string, extra ...string) {
	t.Helper()
	pushUnsignedImage(t, binary, ref, extra...)
	strata(t, "image", "sign", "--cluster-key", "--data-dir", shared.dataDir, ref)
}

// pushUnsignedImage builds and pushes an image without signing it.
func pushUnsignedImage(t *testing.T, binary, ref string, extra ...string) {
	t.Helper()
	strata(t, append([]string{"image", "build", "--binary", bin(binary), "-t", ref, "--push"}, extra...)...)
}

// strata runs the CLI and fails the test if it fails.
func strata(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin("strata"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// clientTLS trusts the server's cluster CA and, unless cert is "",
// presents the client certificate DATA/pki/<cert>.crt (e.g. "admin").
func (s *server) clientTLS(t *testing.T, cert string) *tls.Config {
	t.Helper()
	pkiDir := filepath.Join(s.dataDir, "pki")
	caPEM, err := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{RootCAs: x509.NewCertPool()}
	tc.RootCAs.AppendCertsFromPEM(caPEM)
	if cert != "" {
		c, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, cert+".crt"), filepath.Join(pkiDir, cert+".key"))
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc
}

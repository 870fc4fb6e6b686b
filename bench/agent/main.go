// Command agent measures `strata agent` against a `strata server` on the
// same machine, the agent in a network namespace of its own
// (test/testnet), as the e2e tests run it:
//
//   - start -> node Ready, cold (a fresh data dir: CA discovery, join, TLS
//     bootstrap, first containerd start) and warm (the same data dir again);
//   - the agent's resident memory idle (20 s after Ready) and with 10 hello
//     pods: the strata agent process (kubelet, kube-proxy, routes and DRA
//     driver run in it), containerd, and the runc shims;
//   - pod-to-pod HTTP latency (one kept-alive connection, sequential
//     requests) from a pod on the agent to a hello pod on the same node and
//     to one on the server's node, in the same run.
//
// It prints median [min-max] over --runs runs.
//
//	go run ./bench/agent --bin bin --runs 5
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/bench/internal/benchutil"
	"github.com/strata-dev/strata/pkg/layout"
	"github.com/strata-dev/strata/test/testnet"
	"github.com/strata-dev/strata/test/testpods"
)

const (
	serverNode = "bench-server"
	agentNode  = "bench-agent"
	pods       = 10
)

type sample struct {
	cold, warm           time.Duration
	idle, busy           rss
	sameP50, sameP99     float64 // ms
	acrossP50, acrossP99 float64 // ms
}

// rss is resident memory in MB.
type rss struct{ agent, agentAnon, containerd, shims float64 }

type bench struct {
	bin, token, serverURL string
	net                   *testnet.Net
	client                kubernetes.Interface
	serverData            string
}

func main() {
	binDir := flag.String("bin", "bin", "directory with strata, containerd, hello and netcheck (make build)")
	runs := flag.Int("runs", 5, "runs")
	requests := flag.Int("requests", 2000, "requests per latency measurement")
	flag.Parse()
	abs, err := filepath.Abs(*binDir)
	if err != nil {
		fail("%v", err)
	}
	b := &bench{bin: abs}
	if err := b.run(*runs, *requests); err != nil {
		fail("%v", err)
	}
}

func (b *bench) run(runs, requests int) error {
	n, err := testnet.New("strbench0", "10.252.0")
	if err != nil {
		return err
	}
	defer n.Close()
	b.net = n
	if _, err := n.AddHost("sbench1"); err != nil {
		return err
	}
	ctx := context.Background()
	srv, err := benchutil.Start(ctx, b.bin, "agent", "--node-ip", n.RootIP(), "--node-name", serverNode)
	if err != nil {
		return err
	}
	defer srv.Close()
	b.serverData = srv.DataDir
	if b.client, err = kubernetes.NewForConfig(srv.REST); err != nil {
		return err
	}
	b.serverURL = "https://" + n.RootIP() + ":6443"
	out, err := b.strata("token", "create", "--ttl", "2h", "--data-dir", srv.DataDir)
	if err != nil {
		return err
	}
	b.token = strings.TrimSpace(out)
	for _, img := range [][]string{
		{"hello", "localhost:5000/hello:v1", "--port", "8080", "--user", "65532"},
		{"netcheck", "localhost:5000/netcheck:bench"},
	} {
		if _, err := b.strata(append([]string{"image", "build", "--binary", filepath.Join(b.bin, img[0]), "-t", img[1], "--push"}, img[2:]...)...); err != nil {
			return err
		}
		if _, err := b.strata("image", "sign", "--cluster-key", "--data-dir", srv.DataDir, img[1]); err != nil {
			return err
		}
	}
	if _, err := b.strata("kubectl", "--data-dir", srv.DataDir, "apply", "-f", "examples/image-policy.yaml"); err != nil {
		return err
	}
	// The latency target on the server's node.
	if err := b.helloPod(ctx, "hello-server", serverNode); err != nil {
		return err
	}

	var ss []sample
	for i := 1; i <= runs; i++ {
		s, err := b.once(ctx, i, requests)
		if err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		fmt.Printf("run %d: cold %.2f s, warm %.2f s; RSS idle agent %.0f MB (anon %.0f) containerd %.0f MB shims %.0f MB; with %d pods %.0f / %.0f / %.0f MB; latency p50/p99 same node %.3f/%.3f ms, across %.3f/%.3f ms\n",
			i, s.cold.Seconds(), s.warm.Seconds(), s.idle.agent, s.idle.agentAnon, s.idle.containerd, s.idle.shims, pods, s.busy.agent, s.busy.containerd, s.busy.shims,
			s.sameP50, s.sameP99, s.acrossP50, s.acrossP99)
		ss = append(ss, s)
	}
	col := func(f func(sample) float64) []float64 {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		return v
	}
	ms := func(v []float64) string {
		med, lo, hi := benchutil.Stats(v)
		return fmt.Sprintf("%.3f ms [%.3f-%.3f]", med, lo, hi)
	}
	fmt.Printf("\nmachine: %s; %d runs, median [min-max]\n", benchutil.Machine(), len(ss))
	fmt.Printf("start -> node Ready, cold:     %s\n", benchutil.SecondsStat(col(func(s sample) float64 { return s.cold.Seconds() })))
	fmt.Printf("start -> node Ready, warm:     %s\n", benchutil.SecondsStat(col(func(s sample) float64 { return s.warm.Seconds() })))
	fmt.Printf("RSS idle, strata agent:        %s\n", benchutil.MBStat(col(func(s sample) float64 { return s.idle.agent })))
	fmt.Printf("RSS idle, agent anonymous:     %s\n", benchutil.MBStat(col(func(s sample) float64 { return s.idle.agentAnon })))
	fmt.Printf("RSS idle, containerd:          %s\n", benchutil.MBStat(col(func(s sample) float64 { return s.idle.containerd })))
	fmt.Printf("RSS idle, shims:               %s\n", benchutil.MBStat(col(func(s sample) float64 { return s.idle.shims })))
	fmt.Printf("RSS %d pods, strata agent:     %s\n", pods, benchutil.MBStat(col(func(s sample) float64 { return s.busy.agent })))
	fmt.Printf("RSS %d pods, agent anonymous:  %s\n", pods, benchutil.MBStat(col(func(s sample) float64 { return s.busy.agentAnon })))
	fmt.Printf("RSS %d pods, containerd:       %s\n", pods, benchutil.MBStat(col(func(s sample) float64 { return s.busy.containerd })))
	fmt.Printf("RSS %d pods, shims:            %s\n", pods, benchutil.MBStat(col(func(s sample) float64 { return s.busy.shims })))
	fmt.Printf("latency p50, same node:        %s\n", ms(col(func(s sample) float64 { return s.sameP50 })))
	fmt.Printf("latency p50, across nodes:     %s\n", ms(col(func(s sample) float64 { return s.acrossP50 })))
	fmt.Printf("latency p99, same node:        %s\n", ms(col(func(s sample) float64 { return s.sameP99 })))
	fmt.Printf("latency p99, across nodes:     %s\n", ms(col(func(s sample) float64 { return s.acrossP99 })))
	return nil
}

// once joins a new agent (cold), restarts it (warm), measures its memory
// idle and with pods, and the latency, then stops it and removes its Node.
func (b *bench) once(ctx context.Context, run, requests int) (sample, error) {
	var s sample
	dataDir, err := os.MkdirTemp("", "strata-bench-agent-node-")
	if err != nil {
		return s, err
	}
	defer os.RemoveAll(dataDir)
	if err := b.deleteNode(ctx); err != nil {
		return s, err
	}
	agent, took, err := b.startAgent(ctx, dataDir)
	if err != nil {
		return s, fmt.Errorf("cold start: %w", err)
	}
	s.cold = took
	benchutil.Stop(agent)
	// The next Ready must come from a heartbeat of the new process.
	time.Sleep(2 * time.Second)
	if agent, s.warm, err = b.startAgent(ctx, dataDir); err != nil {
		return s, fmt.Errorf("warm start: %w", err)
	}
	defer benchutil.Stop(agent)
	time.Sleep(20 * time.Second)
	s.idle = measure(agent.Process.Pid, dataDir)

	names := make([]string, pods)
	for i := range names {
		names[i] = fmt.Sprintf("hello-agent-%d", i)
		if err := b.helloPod(ctx, names[i], agentNode); err != nil {
			return s, err
		}
	}
	for _, name := range names {
		if err := b.waitReady(ctx, name); err != nil {
			return s, err
		}
	}
	time.Sleep(10 * time.Second)
	s.busy = measure(agent.Process.Pid, dataDir)

	sameIP, err := b.podIP(ctx, names[0])
	if err != nil {
		return s, err
	}
	acrossIP, err := b.podIP(ctx, "hello-server")
	if err != nil {
		return s, err
	}
	// Alternate which goes first, so neither always runs on a warmer path.
	measureSame := func() (err error) { s.sameP50, s.sameP99, err = b.latency(ctx, sameIP, requests); return err }
	measureAcross := func() (err error) { s.acrossP50, s.acrossP99, err = b.latency(ctx, acrossIP, requests); return err }
	order := []func() error{measureSame, measureAcross}
	if run%2 == 0 {
		order[0], order[1] = order[1], order[0]
	}
	for _, m := range order {
		if err := m(); err != nil {
			return s, err
		}
	}
	for _, name := range names {
		_ = b.client.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	}
	return s, nil
}

// startAgent runs the agent and returns once its Node is Ready with a
// heartbeat from this start.
func (b *bench) startAgent(ctx context.Context, dataDir string) (*exec.Cmd, time.Duration, error) {
	logf, err := os.OpenFile(filepath.Join(os.TempDir(), "strata-bench-agent.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, 0, err
	}
	defer logf.Close()
	cmd := b.net.Command("sbench1", filepath.Join(b.bin, "strata"), "agent", "--server", b.serverURL, "--token", b.token,
		"--data-dir", dataDir, "--node-name", agentNode, "--cgroup-root", "/strata-bench",
		"--pod-logs-dir", filepath.Join(dataDir, "pod-logs"))
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := b.client.CoreV1().Nodes().Get(ctx, agentNode, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range n.Status.Conditions {
			// Heartbeats have a resolution of one second.
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && !c.LastHeartbeatTime.Time.Before(start.Truncate(time.Second)) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		benchutil.Stop(cmd)
		return nil, 0, fmt.Errorf("node %s not Ready (agent log: %s): %w", agentNode, logf.Name(), err)
	}
	return cmd, time.Since(start), nil
}

func (b *bench) deleteNode(ctx context.Context) error {
	err := b.client.CoreV1().Nodes().Delete(ctx, agentNode, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := b.client.CoreV1().Nodes().Get(ctx, agentNode, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

// measure reads the agent's, its containerd's and its shims' RSS.
func measure(agentPid int, dataDir string) rss {
	r := rss{agent: benchutil.RSS(agentPid), agentAnon: benchutil.RSSAnon(agentPid)}
	ctrd := benchutil.ChildNamed(agentPid, "containerd")
	if ctrd == 0 {
		return r
	}
	r.containerd = benchutil.RSS(ctrd)
	// Shims detach from containerd (their parent is init); they name
	// containerd's socket, which lives in the agent's run dir.
	runDir := layout.Layout{DataDir: dataDir}.RunDir()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(cmdline), "containerd-shim-runc-v2") && strings.Contains(string(cmdline), runDir) {
			r.shims += benchutil.RSS(pid)
		}
	}
	return r
}

func (b *bench) helloPod(ctx context.Context, name, node string) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: testpods.Restricted(corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{Name: "hello", Image: "localhost:5000/hello:v1",
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1}}},
		}),
	}
	if _, err := b.client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create pod %s: %w", name, err)
	}
	return b.waitReady(ctx, name)
}

func (b *bench) waitReady(ctx context.Context, name string) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := b.client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		return err == nil && testpods.Ready(p), nil
	})
}

func (b *bench) podIP(ctx context.Context, name string) (string, error) {
	p, err := b.client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return p.Status.PodIP, nil
}

var latencyLine = regexp.MustCompile(`latency n=\d+ p50=(\d+) p99=(\d+)`)

// latency runs netcheck on the agent against ip:8080 and returns its p50
// and p99 in ms.
func (b *bench) latency(ctx context.Context, ip string, requests int) (p50, p99 float64, err error) {
	name := "latency-" + strings.ReplaceAll(ip, ".", "-")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: testpods.Restricted(corev1.PodSpec{
			NodeName:      agentNode,
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "netcheck", Image: "localhost:5000/netcheck:bench",
				Args: []string{"--latency", strconv.Itoa(requests), "http://" + ip + ":8080/"}}},
		}),
	}
	if _, err := b.client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return 0, 0, err
	}
	defer b.client.CoreV1().Pods("default").Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	var phase corev1.PodPhase
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := b.client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		phase = p.Status.Phase
		return phase == corev1.PodSucceeded || phase == corev1.PodFailed, nil
	})
	logs, lerr := b.strata("kubectl", "--data-dir", b.serverData, "logs", name)
	if err != nil || lerr != nil || phase != corev1.PodSucceeded {
		return 0, 0, fmt.Errorf("latency pod %s: %s, %v %v: %s", name, phase, err, lerr, logs)
	}
	m := latencyLine.FindStringSubmatch(logs)
	if m == nil {
		return 0, 0, fmt.Errorf("latency pod %s printed no figures: %s", name, logs)
	}
	us50, _ := strconv.ParseFloat(m[1], 64)
	us99, _ := strconv.ParseFloat(m[2], 64)
	return us50 / 1000, us99 / 1000, nil
}

func (b *bench) strata(args ...string) (string, error) {
	out, err := exec.Command(filepath.Join(b.bin, "strata"), args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("strata %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/agent: "+format+"\n", args...)
	os.Exit(1)
}

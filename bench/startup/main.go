// Command startup measures how fast `strata server` comes up, from process
// start on an empty data dir (cold) and on one that already holds a cluster
// with the hello demo (warm): time to API /readyz, to node Ready, to the
// first hello pod Running; peak RSS of the server and of containerd; the
// time from SIGTERM to exit with the demo running; binary size. It prints
// median and spread over --runs runs.
//
//	go run ./bench/startup --bin bin --runs 5
package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/strata-dev/strata/bench/internal/benchutil"
	"github.com/strata-dev/strata/pkg/layout"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

type sample struct {
	api, node, pod, stop    time.Duration
	serverRSS, containerdMB float64
}

func main() {
	binDir := flag.String("bin", "bin", "directory with strata, strata-pause and hello (make build)")
	runs := flag.Int("runs", 5, "runs per mode")
	flag.Parse()
	strata := filepath.Join(*binDir, "strata")
	st, err := os.Stat(strata)
	if err != nil {
		fail("%v (run make build first)", err)
	}
	results := map[string][]sample{}
	warmDir, err := os.MkdirTemp("", "strata-bench-warm-")
	if err != nil {
		fail("%v", err)
	}
	defer os.RemoveAll(warmDir)
	// Prepare the warm data dir once: a cluster with hello deployed.
	if _, err := runOnce(*binDir, warmDir, true); err != nil {
		fail("prepare warm data dir: %v", err)
	}
	for i := 0; i < *runs; i++ {
		cold, err := os.MkdirTemp("", "strata-bench-cold-")
		if err != nil {
			fail("%v", err)
		}
		s, err := runOnce(*binDir, cold, true)
		if err != nil {
			fail("cold run %d: %v (data dir kept: %s)", i+1, err, cold)
		}
		os.RemoveAll(cold)
		results["cold"] = append(results["cold"], s)
		fmt.Fprintf(os.Stderr, "cold %d: api %v node %v pod %v stop %v rss %.0f MB containerd %.0f MB\n", i+1, s.api, s.node, s.pod, s.stop, s.serverRSS, s.containerdMB)
		s, err = runOnce(*binDir, warmDir, false)
		if err != nil {
			fail("warm run %d: %v", i+1, err)
		}
		results["warm"] = append(results["warm"], s)
		fmt.Fprintf(os.Stderr, "warm %d: api %v node %v pod %v stop %v rss %.0f MB containerd %.0f MB\n", i+1, s.api, s.node, s.pod, s.stop, s.serverRSS, s.containerdMB)
	}
	fmt.Printf("binary size: strata %.1f MB\n\n", float64(st.Size())/1e6)
	fmt.Println("| data dir | API /readyz | node Ready | first hello pod Running | SIGTERM to exit | server peak RSS | containerd peak RSS |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, mode := range []string{"cold", "warm"} {
		ss := results[mode]
		fmt.Printf("| %s (n=%d) | %s | %s | %s | %s | %s | %s |\n", mode, len(ss),
			durStat(ss, func(s sample) time.Duration { return s.api }),
			durStat(ss, func(s sample) time.Duration { return s.node }),
			durStat(ss, func(s sample) time.Duration { return s.pod }),
			durStat(ss, func(s sample) time.Duration { return s.stop }),
			mbStat(ss, func(s sample) float64 { return s.serverRSS }),
			mbStat(ss, func(s sample) float64 { return s.containerdMB }))
	}
	fmt.Println("\ncells: median [min-max]")
}

// runOnce starts the server on dataDir, measures, and stops it. With deploy
// it pushes and signs the hello image and applies the demo as soon as the
// API answers, as a user's script would (make run does the same). The API
// counts as ready when the admin kubeconfig exists and /readyz answers: the
// server publishes that kubeconfig only once admission policies are
// enforced.
func runOnce(binDir, dataDir string, deploy bool) (sample, error) {
	var s sample
	strata := filepath.Join(binDir, "strata")
	cmd := exec.Command(strata, "server", "--data-dir", dataDir)
	logf, err := os.Create(filepath.Join(os.TempDir(), "strata-bench-server.log"))
	if err != nil {
		return s, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return s, err
	}
	defer benchutil.Stop(cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	client, err := waitClient(ctx, layout.Layout{DataDir: dataDir}.AdminKubeconfig())
	if err != nil {
		return s, err
	}
	for {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			s.api = time.Since(start)
			break
		}
		if ctx.Err() != nil {
			return s, fmt.Errorf("API not ready: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if deploy {
		push := exec.Command(strata, "image", "build", "--binary", filepath.Join(binDir, "hello"), "--port", "8080", "--user", "65532", "-t", "localhost:5000/hello:v1", "--push")
		if out, err := push.CombinedOutput(); err != nil {
			return s, fmt.Errorf("push hello: %v: %s", err, out)
		}
		sign := exec.Command(strata, "image", "sign", "--cluster-key", "--data-dir", dataDir, "localhost:5000/hello:v1")
		if out, err := sign.CombinedOutput(); err != nil {
			return s, fmt.Errorf("sign hello: %v: %s", err, out)
		}
		apply := exec.Command(strata, "kubectl", "--data-dir", dataDir, "apply", "-f", "examples/image-policy.yaml", "-f", "examples/hello/deploy.yaml")
		if out, err := apply.CombinedOutput(); err != nil {
			return s, fmt.Errorf("apply hello: %v: %s", err, out)
		}
	}
	var nodeDone, podDone bool
	for !nodeDone || !podDone {
		if ctx.Err() != nil {
			return s, fmt.Errorf("timed out (node ready %v, pod running %v)", nodeDone, podDone)
		}
		if !nodeDone {
			if nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
				for _, n := range nodes.Items {
					for _, c := range n.Status.Conditions {
						// A Ready condition from the previous run does not count.
						if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && c.LastHeartbeatTime.After(start.Add(-time.Second)) {
							s.node, nodeDone = time.Since(start), true
						}
					}
				}
			}
		}
		if !podDone {
			if pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=hello"}); err == nil {
				for _, p := range pods.Items {
					if p.Status.Phase != corev1.PodRunning {
						continue
					}
					for _, cs := range p.Status.ContainerStatuses {
						if cs.State.Running != nil && cs.State.Running.StartedAt.After(start.Add(-time.Second)) {
							s.pod, podDone = time.Since(start), true
						}
					}
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	s.serverRSS = benchutil.PeakRSS(cmd.Process.Pid)
	if pid := benchutil.ChildNamed(cmd.Process.Pid, "containerd"); pid > 0 {
		s.containerdMB = benchutil.PeakRSS(pid)
	}
	stopping := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return s, err
	}
	if err := cmd.Wait(); err != nil {
		return s, fmt.Errorf("server exit after SIGTERM: %w", err)
	}
	s.stop = time.Since(stopping)
	return s, nil
}

func waitClient(ctx context.Context, kubeconfig string) (kubernetes.Interface, error) {
	for {
		if rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig); err == nil {
			rc.Timeout = 2 * time.Second
			return kubernetes.NewForConfig(rc)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("no kubeconfig at %s", kubeconfig)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func durStat(ss []sample, f func(sample) time.Duration) string {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s).Seconds()
	}
	return benchutil.SecondsStat(v)
}

func mbStat(ss []sample, f func(sample) float64) string {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	return benchutil.MBStat(v)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/startup: "+format+"\n", args...)
	os.Exit(1)
}

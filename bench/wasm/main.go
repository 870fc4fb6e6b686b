// Command wasm compares wasm pods (RuntimeClass wasm, the wasm-http
// example) with container pods (runc, the hello example) on one strata
// server, side by side:
//
//   - pod create -> Ready latency, pods created one at a time, kinds
//     alternating (p50, p95 over --n pods of each kind);
//
//   - memory per idle pod with --n pods of one kind running: PSS of the
//     processes that kind adds (wasm: the shims and their pause children;
//     runc: the runc shims plus the pods' pause and app processes);
//
//   - requests/s and latency of 1 KB responses from one pod of each kind,
//     with wrk from the host to the pod IP: 16 connections for throughput,
//     then one connection, whose p50 is the whole per-request cost.
//
//     go run ./bench/wasm --bin bin --n 20
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/bench/internal/benchutil"
)

type kind struct {
	name    string
	image   string
	runtime *string
}

// kinds: the Go-built wasm handler, a runtime-free one (its only response
// is 1 KB, whatever the path), and the native container.
var kinds = []kind{
	{name: "wasm (wasm-http, Go)", image: "localhost:5000/bench/wasm-http:v1", runtime: ptr.To("wasm")},
	{name: "wasm-static (no runtime)", image: "localhost:5000/bench/wasm-static:v1", runtime: ptr.To("wasm")},
	{name: "container (hello)", image: "localhost:5000/bench/hello:v1"},
}

func main() {
	binDir := flag.String("bin", "bin", "directory with strata, the shim and the examples (make build)")
	n := flag.Int("n", 20, "pods of each kind")
	wrkDuration := flag.Duration("wrk-duration", 10*time.Second, "wrk run length per pod")
	flag.Parse()
	if err := run(*binDir, *n, *wrkDuration); err != nil {
		fmt.Fprintln(os.Stderr, "bench/wasm:", err)
		os.Exit(1)
	}
}

func run(binDir string, n int, wrkDuration time.Duration) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk not found: apt-get install wrk")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	srv, err := benchutil.Start(ctx, binDir, "wasm")
	if err != nil {
		return err
	}
	defer srv.Close()
	dataDir, rc := srv.DataDir, srv.REST
	rc.QPS, rc.Burst = 100, 200
	client := kubernetes.NewForConfigOrDie(rc)
	strata := func(args ...string) error {
		out, err := exec.Command(filepath.Join(binDir, "strata"), args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, args := range [][]string{
		{"image", "build", "--wasm", filepath.Join(binDir, "wasm-http.wasm"), "--http-port", "8080", "-t", kinds[0].image, "--push"},
		{"image", "build", "--wasm", filepath.Join(binDir, "wasm-static.wasm"), "--http-port", "8080", "-t", kinds[1].image, "--push"},
		{"image", "build", "--binary", filepath.Join(binDir, "hello"), "--port", "8080", "--user", "65532", "-t", kinds[2].image, "--push"},
		{"image", "sign", "--cluster-key", "--data-dir", dataDir, kinds[0].image},
		{"image", "sign", "--cluster-key", "--data-dir", dataDir, kinds[1].image},
		{"image", "sign", "--cluster-key", "--data-dir", dataDir, kinds[2].image},
		{"kubectl", "--data-dir", dataDir, "apply", "-f", "examples/image-policy.yaml"},
	} {
		if err := strata(args...); err != nil {
			return err
		}
	}

	// Warm-up: pull both images and compile the module once, as a node
	// that already ran the workload would have.
	for _, k := range kinds {
		if _, _, err := createReady(ctx, client, k, "warmup"); err != nil {
			return err
		}
		if err := deleteAll(ctx, client); err != nil {
			return err
		}
	}

	// 1. create -> Ready, alternating kinds.
	ready := map[string][]float64{}
	for i := 0; i < n; i++ {
		for _, k := range kinds {
			d, _, err := createReady(ctx, client, k, fmt.Sprintf("r%d", i))
			if err != nil {
				return err
			}
			ready[k.name] = append(ready[k.name], float64(d.Milliseconds()))
		}
	}
	if err := deleteAll(ctx, client); err != nil {
		return err
	}

	// 2. memory per idle pod, one kind at a time; 3. wrk against one pod.
	mem := map[string]float64{}
	type load struct{ rps, p50, p99, serialP50 string }
	loads := map[string]load{}
	for _, k := range kinds {
		var ip string
		for i := 0; i < n; i++ {
			_, pod, err := createReady(ctx, client, k, fmt.Sprintf("m%d", i))
			if err != nil {
				return err
			}
			ip = pod.Status.PodIP
		}
		time.Sleep(5 * time.Second) // let start-up garbage be collected
		mem[k.name] = podMemoryMB(k) / float64(n)
		var l load
		for _, conns := range []string{"16", "1"} {
			out, err := exec.Command("wrk", "-t1", "-c"+conns, "-d"+wrkDuration.String(), "--latency", "http://"+ip+":8080/size?n=1024").CombinedOutput()
			if err != nil {
				return fmt.Errorf("wrk: %v\n%s", err, out)
			}
			rps, p50, p99 := parseWrk(string(out))
			if conns == "16" {
				l.rps, l.p50, l.p99 = rps, p50, p99
			} else {
				l.serialP50 = p50 // one request at a time: the per-request cost
			}
		}
		loads[k.name] = l
		if err := deleteAll(ctx, client); err != nil {
			return err
		}
	}

	fmt.Printf("\n| pod kind | create->Ready p50 | p95 | memory per idle pod (PSS) | 1 KB req/s (16 conns) | latency p50 | p99 | latency p50, 1 conn |\n|---|---|---|---|---|---|---|---|\n")
	for _, k := range kinds {
		v := ready[k.name]
		p50, p95 := benchutil.Percentile(v, 50), benchutil.Percentile(v, 95)
		l := loads[k.name]
		fmt.Printf("| %s | %.0f ms | %.0f ms | %.1f MB | %s | %s | %s | %s |\n", k.name, p50, p95, mem[k.name], l.rps, l.p50, l.p99, l.serialP50)
	}
	c50 := benchutil.Percentile(ready[kinds[2].name], 50)
	for _, k := range kinds[:2] {
		fmt.Printf("\n%s / container create->Ready p50 ratio: %.2f (n=%d each, interleaved)", k.name, benchutil.Percentile(ready[k.name], 50)/c50, n)
	}
	fmt.Println()
	return nil
}

// createReady creates one pod and returns the time until a watch saw it
// Ready.
func createReady(ctx context.Context, client kubernetes.Interface, k kind, suffix string) (time.Duration, *corev1.Pod, error) {
	name := "bench-" + strings.Fields(k.name)[0] + "-" + suffix // e.g. bench-wasm-static-r3
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"bench": "wasm"}},
		Spec: corev1.PodSpec{
			RuntimeClassName: k.runtime,
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{Name: "app", Image: k.image, Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
		},
	}
	w, err := client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		return 0, nil, err
	}
	defer w.Stop()
	start := time.Now()
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return 0, nil, fmt.Errorf("create %s: %w", name, err)
	}
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case ev := <-w.ResultChan():
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					return time.Since(start), p, nil
				}
			}
		case <-timeout:
			return 0, nil, fmt.Errorf("pod %s not Ready after 2m", name)
		}
	}
}

func deleteAll(ctx context.Context, client kubernetes.Interface) error {
	sel := metav1.ListOptions{LabelSelector: "bench=wasm"}
	if err := client.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, sel); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := client.CoreV1().Pods("default").List(ctx, sel)
		return err == nil && len(pods.Items) == 0, nil
	})
}

// podMemoryMB sums the PSS of the processes that pods of kind k add.
func podMemoryMB(k kind) float64 {
	var total float64
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cgroup, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		var counts bool
		if k.runtime != nil {
			counts = strings.Contains(string(cmdline), "containerd-shim-strata-wasm-v1")
		} else {
			counts = strings.Contains(string(cmdline), "containerd-shim-runc-v2") || strings.Contains(string(cgroup), "kubepods")
		}
		if counts {
			total += pssMB(e.Name())
		}
	}
	return total
}

func pssMB(pid string) float64 {
	f, err := os.Open(filepath.Join("/proc", pid, "smaps_rollup"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb float64
		if _, err := fmt.Sscanf(sc.Text(), "Pss: %f kB", &kb); err == nil {
			return kb / 1024
		}
	}
	return 0
}

var (
	rpsRe = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	p50Re = regexp.MustCompile(`\s50%\s+(\S+)`)
	p99Re = regexp.MustCompile(`\s99%\s+(\S+)`)
)

func parseWrk(out string) (rps, p50, p99 string) {
	get := func(re *regexp.Regexp) string {
		if m := re.FindStringSubmatch(out); m != nil {
			return m[1]
		}
		return "?"
	}
	return get(rpsRe), get(p50Re), get(p99Re)
}

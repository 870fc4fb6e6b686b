// Command serverless measures Functions on a fresh `strata server`: cold
// start (zero replicas to the first response byte) for a wasm and a
// container function, the gateway's added latency against requests sent
// straight to the pod, and how long replicas take to follow a 10x load
// step. Run it with `make bench-serverless` on an otherwise idle machine.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/strata-dev/strata/bench/internal/benchutil"
)

const gateway = "http://127.0.0.1:8088"

func main() {
	binDir := flag.String("bin", "bin", "directory with strata and the examples (make build)")
	n := flag.Int("n", 20, "cold starts of each kind")
	serial := flag.Int("serial", 2000, "warm requests per path for the gateway overhead")
	flag.Parse()
	if err := run(*binDir, *n, *serial); err != nil {
		fmt.Fprintln(os.Stderr, "bench/serverless:", err)
		os.Exit(1)
	}
}

type fn struct{ name, image string }

var fns = []fn{{"wasm", "localhost:5000/wasm-http:bench"}, {"container", "localhost:5000/hello:bench"}}

func run(binDir string, n, serial int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	srv, err := benchutil.Start(ctx, binDir, "serverless")
	if err != nil {
		return err
	}
	defer srv.Close()
	client := kubernetes.NewForConfigOrDie(srv.REST)
	strata := func(args ...string) error {
		out, err := exec.Command(filepath.Join(binDir, "strata"), args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	d := srv.DataDir
	for _, args := range [][]string{
		{"image", "build", "--wasm", filepath.Join(binDir, "wasm-http.wasm"), "--http-port", "8080", "-t", fns[0].image, "--push"},
		{"image", "build", "--binary", filepath.Join(binDir, "hello"), "--port", "8080", "--user", "65532", "-t", fns[1].image, "--push"},
		{"image", "sign", "--cluster-key", "--data-dir", d, fns[0].image},
		{"image", "sign", "--cluster-key", "--data-dir", d, fns[1].image},
		{"kubectl", "--data-dir", d, "apply", "-f", "examples/image-policy.yaml"},
		// Scale to zero 1 s after the last request, so runs are short.
		{"function", "--data-dir", d, "deploy", "wasm", "--image", fns[0].image, "--runtime", "wasm", "--scale-to-zero-grace", "1s", "--stable-window", "6s"},
		{"function", "--data-dir", d, "deploy", "container", "--image", fns[1].image, "--scale-to-zero-grace", "1s", "--stable-window", "6s"},
	} {
		if err := strata(args...); err != nil {
			return err
		}
	}

	// 1. Cold starts, kinds interleaved. Each run waits until the function
	// has no pod at all, then times one request to its first byte.
	cold := map[string][]float64{}
	for i := 0; i < n+1; i++ {
		for _, f := range fns {
			if err := waitNoPods(ctx, client, f.name); err != nil {
				return err
			}
			t, hdr, err := firstByte(f.name, "/")
			if err != nil {
				return err
			}
			if hdr.Get("X-Strata-Cold-Start") != "true" {
				return fmt.Errorf("%s: request at zero was not a cold start", f.name)
			}
			if i > 0 { // the first pulls and compiles
				cold[f.name] = append(cold[f.name], ms(t))
			}
		}
	}
	fmt.Printf("cold start, zero replicas -> first byte (n=%d)\n", n)
	for _, f := range fns {
		v := cold[f.name]
		fmt.Printf("  %-9s p50 %8.1f ms  p95 %8.1f ms  min %7.1f  max %7.1f\n", f.name,
			benchutil.Percentile(v, 50), benchutil.Percentile(v, 95), benchutil.Percentile(v, 0), benchutil.Percentile(v, 100))
	}

	// 2. Gateway overhead: one warm replica, serial requests alternating
	// between the gateway and the pod's own address.
	fmt.Printf("warm request latency, serial, n=%d each (gateway vs direct to the pod)\n", serial)
	for _, f := range fns {
		if err := strata("function", "--data-dir", d, "deploy", f.name, "--image", f.image, "--runtime", f.name, "--min-scale", "1"); err != nil {
			return err
		}
		podAddr, err := readyPod(ctx, client, f.name)
		if err != nil {
			return err
		}
		var viaGW, direct []float64
		for i := 0; i < serial+100; i++ {
			t1, _, err := timed(gateway+"/size?n=1024", f.name+".default.localhost")
			if err != nil {
				return err
			}
			t2, _, err := timed("http://"+podAddr+"/size?n=1024", "")
			if err != nil {
				return err
			}
			if i >= 100 {
				viaGW, direct = append(viaGW, ms(t1)), append(direct, ms(t2))
			}
		}
		g50, g99 := benchutil.Percentile(viaGW, 50), benchutil.Percentile(viaGW, 99)
		d50, d99 := benchutil.Percentile(direct, 50), benchutil.Percentile(direct, 99)
		fmt.Printf("  %-9s gateway p50 %.3f p99 %.3f ms; direct p50 %.3f p99 %.3f ms; added p50 %.3f p99 %.3f ms\n",
			f.name, g50, g99, d50, d99, g50-d50, g99-d99)
	}

	// 3. A 10x load step on the container function (target 1 request per
	// replica): 1 client loop, then 10. Time until the desired and the
	// ready replicas reach 10.
	if err := strata("function", "--data-dir", d, "deploy", "container", "--image", fns[1].image, "--min-scale", "1", "--max-scale", "10",
		"--target-concurrency", "1", "--stable-window", "60s"); err != nil {
		return err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	loops := func(k int) {
		for i := 0; i < k; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					// Each loop keeps about one request in flight.
					_, _, _ = timed(gateway+"/sleep?ms=200", "container.default.localhost")
				}
			}()
		}
	}
	loops(1)
	time.Sleep(15 * time.Second)
	step := time.Now()
	loops(9)
	var toDesired, toReady time.Duration
	for toReady == 0 && time.Since(step) < 3*time.Minute {
		dep, err := client.AppsV1().Deployments("default").Get(ctx, "container", metav1.GetOptions{})
		if err == nil {
			if toDesired == 0 && dep.Spec.Replicas != nil && *dep.Spec.Replicas >= 10 {
				toDesired = time.Since(step)
			}
			if dep.Status.ReadyReplicas >= 10 {
				toReady = time.Since(step)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	fmt.Printf("10x load step (1 -> 10 concurrent clients, target 1 per replica): desired 10 after %s, 10 ready after %s\n",
		toDesired.Round(10*time.Millisecond), toReady.Round(10*time.Millisecond))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func waitNoPods(ctx context.Context, client kubernetes.Interface, name string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "serving.strata.dev/function=" + name})
		dep, derr := client.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
		if err == nil && derr == nil && len(pods.Items) == 0 && dep.Spec.Replicas != nil && *dep.Spec.Replicas == 0 {
			time.Sleep(500 * time.Millisecond) // let the gateway see it too
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s did not scale to zero", name)
}

func readyPod(ctx context.Context, client kubernetes.Interface, name string) (string, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "serving.strata.dev/function=" + name})
		if err == nil {
			for _, p := range pods.Items {
				for _, c := range p.Status.Conditions {
					if c.Type == "Ready" && c.Status == "True" && p.DeletionTimestamp == nil {
						time.Sleep(time.Second) // the gateway's view catches up
						return p.Status.PodIP + ":8080", nil
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "", fmt.Errorf("%s has no ready pod", name)
}

var httpClient = &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// firstByte times a request through the gateway to the response headers
// (the first byte).
func firstByte(name, path string) (time.Duration, http.Header, error) {
	req, _ := http.NewRequest(http.MethodGet, gateway+path, nil)
	req.Host = name + ".default.localhost"
	start := time.Now()
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	t := time.Since(start)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, nil, fmt.Errorf("%s: status %d", name, resp.StatusCode)
	}
	return t, resp.Header, nil
}

// timed times a whole request.
func timed(url, host string) (time.Duration, int, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if host != "" {
		req.Host = host
	}
	start := time.Now()
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return time.Since(start), resp.StatusCode, nil
}

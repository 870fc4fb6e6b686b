package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/strata-dev/strata/pkg/wasm/wasmtest"
)

const gateway = "http://127.0.0.1:8088"

// The serverless issue's acceptance 1-4 against the real server: Functions
// answer through the gateway, scale to zero and back, follow load, and
// fail clearly and quickly.
func TestFunctions(t *testing.T) {
	s := cluster(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "trap.wasm"), wasmtest.Trap, 0o644); err != nil {
		t.Fatal(err)
	}
	pushWasm(t, bin("wasm-http.wasm"), "localhost:5000/wasm-http:v1", "--http-port", "8080")
	pushWasm(t, filepath.Join(dir, "trap.wasm"), "localhost:5000/fn-trap:e2e", "--http-port", "8080")
	pushImage(t, "hello", "localhost:5000/hello:v1", "--port", "8080", "--user", "65532")
	fast := []string{"--scale-to-zero-grace", "3s", "--stable-window", "6s"}

	t.Run("a wasm Function scales to zero and answers from zero", func(t *testing.T) {
		s.mustKubectl(t, "apply", "-f", "../../examples/functions/wasm-http.yaml")
		t.Cleanup(func() { s.kubectl(t, "delete", "function", "wasm-hello", "--wait=false") })
		s.mustKubectl(t, "patch", "function", "wasm-hello", "--type=merge", "-p", `{"spec":{"scaleToZeroGracePeriod":"3s","stableWindow":"6s"}}`)
		s.checkScaleToZeroAndBack(t, "wasm-hello", "hello from a wasm Function")
	})

	t.Run("a container Function scales to zero and answers from zero", func(t *testing.T) {
		out := s.function(t, append([]string{"deploy", "hello-fn", "--image", "localhost:5000/hello:v1"}, fast...)...)
		if !strings.Contains(out, "http://hello-fn.default.localhost:8088/") {
			t.Fatalf("deploy printed no URL:\n%s", out)
		}
		t.Cleanup(func() { s.function(t, "delete", "hello-fn") })
		s.checkScaleToZeroAndBack(t, "hello-fn", "hello from Strata: pod hello-fn-")
		if logs := s.function(t, "logs", "hello-fn"); !strings.Contains(logs, "hello listening on :8080") {
			t.Errorf("strata function logs:\n%s", logs)
		}
		if list := s.function(t, "list"); !regexp.MustCompile(`hello-fn\s+container\s+True`).MatchString(list) {
			t.Errorf("strata function list:\n%s", list)
		}
	})

	t.Run("replicas follow a load step without failed requests", func(t *testing.T) {
		s.function(t, append([]string{"deploy", "load-fn", "--image", "localhost:5000/wasm-http:v1", "--runtime", "wasm",
			"--target-concurrency", "2", "--max-scale", "4"}, fast...)...)
		t.Cleanup(func() { s.function(t, "delete", "load-fn") })
		var ok, bad atomic.Int64
		var failures sync.Map
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < 12; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					code, body, _, err := get("load-fn.default.localhost", "/size?n=1024")
					if err != nil || code != 200 || len(body) != 1024 {
						bad.Add(1)
						failures.Store(fmt.Sprintf("%d %v %.80s", code, err, body), true)
						continue
					}
					ok.Add(1)
				}
			}()
		}
		peak := int32(0)
		waitFor(t, 60*time.Second, "load-fn to scale above one replica", func(ctx context.Context) (bool, error) {
			peak = max(peak, s.readyReplicas(ctx, "load-fn"))
			return peak >= 2, nil
		})
		time.Sleep(3 * time.Second)
		close(stop)
		wg.Wait()
		waitFor(t, 90*time.Second, "load-fn to return to zero pods", func(ctx context.Context) (bool, error) {
			return s.functionPods(ctx, "load-fn") == 0, nil
		})
		// Requests during scale-down to zero (served by pods, then the host).
		for i := 0; i < 20; i++ {
			if code, body, _, err := get("load-fn.default.localhost", "/size?n=1024"); err != nil || code != 200 || len(body) != 1024 {
				t.Fatalf("after scale-down: %d %v", code, err)
			}
		}
		t.Logf("load step: %d requests ok, peak %d ready replicas", ok.Load(), peak)
		if bad.Load() > 0 {
			var list []string
			failures.Range(func(k, _ any) bool { list = append(list, k.(string)); return true })
			t.Fatalf("%d of %d requests failed during scaling: %v", bad.Load(), ok.Load()+bad.Load(), list)
		}
	})

	t.Run("bad functions fail clearly and quickly", func(t *testing.T) {
		// A duration Go cannot parse is refused by the API server with the
		// field; admitted, it would stop the controller decoding every
		// Function (found by FuzzFunctionAdmission).
		bad := "apiVersion: serving.strata.dev/v1alpha1\nkind: Function\nmetadata: {name: bad-timeout, namespace: default}\nspec: {image: localhost:5000/hello:v1, timeout: soon}\n"
		if out, err := s.kubectlStdin(t, bad, "apply", "-f", "-"); err == nil || !strings.Contains(out, "spec.timeout") || !strings.Contains(out, "must be a duration such as 30s") {
			t.Fatalf("Function with timeout \"soon\": %v\n%s", err, out)
		}

		s.function(t, "deploy", "missing-fn", "--image", "localhost:5000/does-not-exist:v1", "--wait", "0")
		t.Cleanup(func() { s.function(t, "delete", "missing-fn") })
		s.waitReadyFalse(t, "missing-fn", "Rejected")
		start := time.Now()
		code, body, _, err := get("missing-fn.default.localhost", "/")
		if err != nil || code != 503 || !strings.Contains(body, "does-not-exist") || time.Since(start) > 2*time.Second {
			t.Fatalf("missing image: %d %q %v after %s", code, body, err, time.Since(start))
		}

		s.function(t, "deploy", "trap-fn", "--image", "localhost:5000/fn-trap:e2e", "--runtime", "wasm", "--wait", "0")
		t.Cleanup(func() { s.function(t, "delete", "trap-fn") })
		for i := 0; i < 4; i++ {
			start := time.Now()
			code, body, _, err := get("trap-fn.default.localhost", "/")
			if err != nil || code != 502 || !strings.Contains(body, "Trap") || time.Since(start) > 5*time.Second {
				t.Fatalf("trapping module: %d %q %v after %s", code, body, err, time.Since(start))
			}
		}
		s.waitReadyFalse(t, "trap-fn", "ModuleFailing")

		// A function that never becomes ready (it listens on another port
		// than it declares): requests wait until the
		// timeout and then get 503; beyond the queue they get 503 at once.
		s.function(t, "deploy", "stuck-fn", "--image", "localhost:5000/hello:v1", "--port", "9999", "--env", "PORT=7777", "--timeout", "4s", "--wait", "0")
		t.Cleanup(func() { s.function(t, "delete", "stuck-fn") })
		var wg sync.WaitGroup
		var overflow, timedOut, other atomic.Int64
		start = time.Now()
		for i := 0; i < 300; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, body, _, err := get("stuck-fn.default.localhost", "/")
				switch {
				case err == nil && code == 503 && strings.Contains(body, "already wait"):
					overflow.Add(1)
				case err == nil && code == 503 && strings.Contains(body, "within the request timeout"):
					timedOut.Add(1)
				default:
					other.Add(1)
				}
			}()
		}
		wg.Wait()
		if overflow.Load() == 0 || timedOut.Load() == 0 || other.Load() != 0 || time.Since(start) > 10*time.Second {
			t.Fatalf("stuck function: %d overflowed, %d timed out, %d other, in %s", overflow.Load(), timedOut.Load(), other.Load(), time.Since(start))
		}
	})

	metrics := s.metricsPage(t)
	for _, want := range []string{"strata_function_requests_total", "strata_function_request_duration_seconds_bucket",
		"strata_function_cold_starts_total", "strata_function_cold_start_duration_seconds", "strata_function_queue_depth",
		"strata_function_ready_replicas"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// checkScaleToZeroAndBack: the function answers, drops to zero pods after
// its grace period, and the next request succeeds as a counted cold start.
func (s *server) checkScaleToZeroAndBack(t *testing.T, name, want string) {
	t.Helper()
	host := name + ".default.localhost"
	waitFor(t, 60*time.Second, name+" to answer", func(ctx context.Context) (bool, error) {
		code, body, _, err := get(host, "/")
		return err == nil && code == 200 && strings.Contains(body, want), nil
	})
	waitFor(t, 60*time.Second, name+" to scale to zero pods", func(ctx context.Context) (bool, error) {
		return s.functionPods(ctx, name) == 0 && s.readyReplicas(ctx, name) == 0, nil
	})
	before := coldStarts(t, s, name)
	start := time.Now()
	code, body, hdr, err := get(host, "/")
	took := time.Since(start)
	if err != nil || code != 200 || !strings.Contains(body, want) || hdr.Get("X-Strata-Cold-Start") != "true" {
		t.Fatalf("request at zero: %d %q %v headers %v", code, body, err, hdr)
	}
	if after := coldStarts(t, s, name); after != before+1 {
		t.Fatalf("cold starts %v -> %v, want one more", before, after)
	}
	t.Logf("%s: cold start answered in %s by %s", name, took, hdr.Get("X-Strata-Backend"))
}

func (s *server) function(t *testing.T, args ...string) string {
	t.Helper()
	return strata(t, append([]string{"function", "--data-dir", s.dataDir}, args...)...)
}

func (s *server) functionPods(ctx context.Context, name string) int {
	pods, err := s.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "serving.strata.dev/function=" + name})
	if err != nil {
		return -1
	}
	return len(pods.Items)
}

func (s *server) readyReplicas(ctx context.Context, name string) int32 {
	d, err := s.client.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return -1
	}
	return d.Status.ReadyReplicas
}

func (s *server) waitReadyFalse(t *testing.T, name, reason string) {
	t.Helper()
	waitFor(t, 60*time.Second, name+" to report Ready=False "+reason, func(ctx context.Context) (bool, error) {
		out, err := s.kubectl(t, "get", "function", name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason}`)
		return err == nil && out == "False/"+reason, nil
	})
}

var gatewayClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 400}}

// get sends a request for host to the gateway on loopback.
func get(host, path string) (int, string, http.Header, error) {
	req, err := http.NewRequest(http.MethodGet, gateway+path, nil)
	if err != nil {
		return 0, "", nil, err
	}
	req.Host = host
	resp, err := gatewayClient.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, err
}

// metricsPage is Strata's metrics page, fetched as the admin (the
// listener serves nobody else by default).
func (s *server) metricsPage(t *testing.T) string {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: s.clientTLS(t, "admin")}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: tr}).Get("https://127.0.0.1:9464/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics as admin: %s\n%s", resp.Status, b)
	}
	return string(b)
}

var coldStartLine = regexp.MustCompile(`(?m)^strata_function_cold_starts_total\{function="([^"]+)",namespace="default"\} (\S+)$`)

func coldStarts(t *testing.T, s *server, name string) float64 {
	t.Helper()
	for _, m := range coldStartLine.FindAllStringSubmatch(s.metricsPage(t), -1) {
		if m[1] == name {
			v, _ := strconv.ParseFloat(m[2], 64)
			return v
		}
	}
	return 0
}

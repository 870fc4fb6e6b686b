package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// crashCycles is how many times in a row the crash loop kills the server.
const crashCycles = 10

// Issue 28: a write workload (ConfigMaps, Secrets, a Deployment scaling, a
// Function taking traffic) while the server is killed with SIGKILL at a
// random point, ten times in a row, restarted on the same data dir each
// time. Every acknowledged write must be there after each restart, etcd
// must hold the same data up to the last revision checked before the kill
// (HashKV across the restart), the pods and the Function must come back,
// and the final clean stop must leave nothing of any generation behind
// (ownServer's cleanup).
func TestCrashLoop(t *testing.T) {
	s := ownServer(t, "strata-e2e-crash-", nil, nil)
	ctx := context.Background()
	s.mustKubectl(t, "apply", "-f", "../../examples/image-policy.yaml")
	pushOwnImage(t, s, "hello", "localhost:5000/hello:v1", "--port", "8080", "--user", "65532")
	strata(t, "image", "build", "--wasm", bin("wasm-http.wasm"), "--http-port", "8080", "-t", "localhost:5000/wasm-http:v1", "--push")
	strata(t, "image", "sign", "--cluster-key", "--data-dir", s.dataDir, "localhost:5000/wasm-http:v1")
	s.mustKubectl(t, "apply", "-f", "../../examples/hello/deploy.yaml", "-f", "../../examples/functions/wasm-http.yaml")
	s.mustKubectl(t, "rollout", "status", "deployment/hello", "--timeout=120s")
	functionAnswers(t)

	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	etcd := etcdClient(t, s.dataDir)
	w := &workload{acked: map[string]string{}}
	var hashRev, hashCompact int64
	var hash uint32
	hashChecks, hashSkipped := 0, 0
	for cycle := 1; cycle <= crashCycles; cycle++ {
		runFor := time.Duration(2000+rng.Intn(4000)) * time.Millisecond
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); w.write(s, cycle, stop) }()
		go func() { defer wg.Done(); w.callFunction(stop) }()
		time.Sleep(runFor)
		s.crash(t)
		close(stop)
		wg.Wait()
		if err := s.start(); err != nil {
			t.Fatalf("cycle %d: restart after SIGKILL: %v", cycle, err)
		}

		// Every acknowledged write is there, with its data.
		w.check(t, s, cycle)
		// etcd: no alarm, and the data up to the revision hashed in the
		// previous generation is unchanged.
		alarms, err := etcd.AlarmList(ctx)
		if err != nil || len(alarms.Alarms) > 0 {
			t.Fatalf("cycle %d: etcd alarms %v (%v)", cycle, alarms, err)
		}
		if hashRev > 0 {
			resp, err := etcd.HashKV(ctx, "https://127.0.0.1:2379", hashRev)
			switch {
			case err != nil && strings.Contains(err.Error(), "compacted"):
				hashSkipped++
			case err != nil:
				t.Fatalf("cycle %d: etcd HashKV(%d): %v", cycle, hashRev, err)
			case resp.CompactRevision != hashCompact:
				hashSkipped++ // the API server compacted in between
			case resp.Hash != hash:
				t.Fatalf("cycle %d: etcd's hash of revision %d changed across the crash: %x, was %x", cycle, hashRev, resp.Hash, hash)
			default:
				hashChecks++
			}
		}
		if hashRev, hashCompact, hash, err = etcdHash(ctx, etcd); err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		// The pods and the Function come back.
		s.mustKubectl(t, "rollout", "status", "deployment/hello", "--timeout=120s")
		functionAnswers(t)
		t.Logf("cycle %d: killed after %s; %d writes acknowledged so far, all present", cycle, runFor.Round(time.Millisecond), len(w.acked))
	}
	// One jump to Strata's masquerade chain, whatever number of
	// generations set it up.
	out, err := exec.Command("iptables", "-t", "nat", "-S", "POSTROUTING").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(out), "-j STRATA-POSTROUTING"); n != 1 {
		t.Errorf("%d jumps to STRATA-POSTROUTING after %d crashes, want 1:\n%s", n, crashCycles, out)
	}
	t.Logf("%d SIGKILLs survived; %d acknowledged writes checked after every restart (%d scale changes); function requests %d answered, %d failed around the kills; etcd hash equal across %d restarts (%d skipped for a compaction)",
		crashCycles, len(w.acked), w.scales, w.calls, w.callErrors, hashChecks, hashSkipped)
}

// crash kills the server process with SIGKILL, as a power cut would; its
// children are left to the next start to clean up.
func (s *server) crash(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.exited
	s.cmd, s.client = nil, nil
}

// workload writes and remembers what the API server acknowledged.
type workload struct {
	mu    sync.Mutex
	acked map[string]string // "configmap/NAME" or "secret/NAME" -> value
	// scale: the last acknowledged replica count, and one whose request
	// was cut by the kill (it may or may not have been stored).
	scale, scaleInFlight int32
	scales               int
	calls, callErrors    int
}

func (w *workload) write(s *server, cycle int, stop <-chan struct{}) {
	ctx := context.Background()
	client := s.client
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		name, value := fmt.Sprintf("crash-%d-%d", cycle, i), strconv.Itoa(cycle*1000+i)
		switch i % 3 {
		case 0:
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Data: map[string]string{"v": value}}
			if _, err := client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err == nil {
				w.ack("configmap/"+name, value)
			}
		case 1:
			sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, StringData: map[string]string{"v": value}}
			if _, err := client.CoreV1().Secrets("default").Create(ctx, sec, metav1.CreateOptions{}); err == nil {
				w.ack("secret/"+name, value)
			}
		case 2:
			replicas := int32(1 + i%3)
			w.mu.Lock()
			w.scaleInFlight = replicas
			w.mu.Unlock()
			sc := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"}, Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}
			if _, err := client.AppsV1().Deployments("default").UpdateScale(ctx, "hello", sc, metav1.UpdateOptions{}); err == nil {
				w.mu.Lock()
				w.scale, w.scaleInFlight = replicas, 0
				w.scales++
				w.mu.Unlock()
			}
		}
		if i%3 == 2 {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func (w *workload) ack(key, value string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.acked[key] = value
}

// callFunction sends the Function requests until stop.
func (w *workload) callFunction(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
		code, _, _, err := get("wasm-hello.default.localhost", "/")
		w.mu.Lock()
		w.calls++
		if err != nil || code != 200 {
			w.callErrors++
		}
		w.mu.Unlock()
	}
}

// check verifies every acknowledged write after a restart.
func (w *workload) check(t *testing.T, s *server, cycle int) {
	t.Helper()
	ctx := context.Background()
	cms, err := s.client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secs, err := s.client.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]string{}
	for _, c := range cms.Items {
		have["configmap/"+c.Name] = c.Data["v"]
	}
	for _, sec := range secs.Items {
		have["secret/"+sec.Name] = string(sec.Data["v"])
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for key, want := range w.acked {
		if got, ok := have[key]; !ok || got != want {
			t.Errorf("cycle %d: acknowledged %s=%s is %q (present %v) after the restart", cycle, key, want, got, ok)
		}
	}
	d, err := s.client.AppsV1().Deployments("default").Get(ctx, "hello", metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	if w.scale != 0 && *d.Spec.Replicas != w.scale && *d.Spec.Replicas != w.scaleInFlight {
		t.Errorf("cycle %d: hello has %d replicas; the last acknowledged scale was %d (in flight at the kill: %d)", cycle, *d.Spec.Replicas, w.scale, w.scaleInFlight)
	}
	w.scale, w.scaleInFlight = *d.Spec.Replicas, 0
}

// etcdHash is etcd's hash of everything up to its current revision.
func etcdHash(ctx context.Context, c *clientv3.Client) (rev, compact int64, hash uint32, err error) {
	st, err := c.Status(ctx, "https://127.0.0.1:2379")
	if err != nil {
		return 0, 0, 0, fmt.Errorf("etcd status: %w", err)
	}
	resp, err := c.HashKV(ctx, "https://127.0.0.1:2379", st.Header.Revision)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("etcd HashKV(%d): %w", st.Header.Revision, err)
	}
	return resp.HashRevision, resp.CompactRevision, resp.Hash, nil
}

// functionAnswers waits for the wasm Function to answer through the
// gateway.
func functionAnswers(t *testing.T) {
	t.Helper()
	waitFor(t, 90*time.Second, "the wasm Function to answer", func(context.Context) (bool, error) {
		code, body, _, err := get("wasm-hello.default.localhost", "/")
		return err == nil && code == 200 && strings.Contains(body, "hello from a wasm Function"), nil
	})
}

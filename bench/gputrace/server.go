// The server replay (--mode server): its options and result, and
// ReplayServer, which starts and stops the strata server process and runs
// one seed's arrivals through it.

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/strata-dev/strata/bench/internal/benchutil"
	"github.com/strata-dev/strata/pkg/gpu"
)

// serverArgs run a control plane only (no kubelet, containerd or GPU
// driver: the GPU nodes are simulated by the replay) on ports away from a
// default server's, so that the replay can run beside one.
var serverArgs = []string{
	"--disable-agent",
	"--https-port", "16443", "--etcd-port", "12379", "--registry-port", "15000",
	"--webhook-port", "19443", "--gateway-port", "18088", "--metrics-port", "19464",
	"--bind-address", "127.0.0.1", "--node-name", "replay-host",
}

// ServerOptions configure a replay through a real strata server.
type ServerOptions struct {
	Bin string // directory holding the strata binary
	// Claims is how pods ask for GPUs: "pod" (one ResourceClaim per pod,
	// all created before the first pod) or "template" (one
	// ResourceClaimTemplate per GPU shape; kube-controller-manager creates
	// each pod's claim).
	Claims string
	// Inflight bounds the pods created but not yet bound or reported
	// unschedulable.
	Inflight int
	// Quiet is how long nothing may change once every pod is decided (or,
	// longer, before giving up on undecided ones).
	Quiet time.Duration
	// MetricsOut, if set, receives the scheduler's metrics at the end (the
	// scheduler runs in the API server's process, whose /metrics serves
	// them).
	MetricsOut string
	// Creators is how many pods are created at once (1: strictly in
	// arrival order, paced by one client's create latency).
	Creators int
	// Keep leaves the server's data dir (logs) in place.
	Keep bool
	// CPUProfile, if set, receives a CPU profile of the server process
	// (everything: etcd, API server, scheduler, controllers) over the
	// first 10 s after the first pod is created.
	CPUProfile string
	// ExecTrace, if set, receives a Go execution trace of the server
	// process over 3 s from 2 s after the first pod is created (where
	// goroutines wait: go tool trace -pprof=sched).
	ExecTrace string
}

// ServerResult is a Result plus what only the server run measures.
type ServerResult struct {
	Result
	Unschedulable, Undecided int
	Start                    time.Duration // server start to a working API
	Span                     time.Duration // first pod created to last pod bound
	Decided                  time.Duration // first pod created to last decision
	Created                  time.Duration // first pod created to last pod created
	// SlotWait is how long the pod creator waited for an in-flight slot:
	// near zero means creation, not scheduling, set the pace.
	SlotWait time.Duration
	// Claims and ClaimsCPU are how many claims (or templates) were created
	// before the first pod, and the server CPU time that took: pod-mode
	// claims are created outside the timed span, so this is where their
	// admission cost shows.
	Claims    int
	ClaimsCPU time.Duration
	// ServerCPU is the CPU time the server process used from the first
	// pod created to the end of the run (its quiet tail included).
	ServerCPU time.Duration
	// ClientCPU is the CPU time this bench process (the pod creators and
	// the watch that times the run) used over the same span: it shares
	// the machine's cores with the server.
	ClientCPU time.Duration
	// PeakRSS is the server process's peak resident set at the end, MB.
	PeakRSS float64
	// Machine is the whole machine's CPU time over ServerCPU's window:
	// what other processes and the hypervisor took says how noisy a run
	// was.
	Machine benchutil.MachineCPU
	// OutOfOrder counts pods the API server committed after a pod that
	// arrives later (concurrent creators).
	OutOfOrder int
	// Order is the arrivals in the order the API server committed them
	// (resourceVersion), which is the order the scheduler's queue got them.
	Order        []int
	TaintedAfter []string // nodes with taints or not Ready at the end
	// Writes: API write requests (POST, PUT, PATCH, DELETE) served from
	// the first create to the end, by verb and resource, most first.
	Writes []string
	// Scheduler: mean seconds per scheduling attempt and per extension
	// point, attempts by result (from the scheduler's metrics).
	Scheduler []string
}

// podState is what the replay learns about one pod from its watch.
type podState struct {
	node          string
	bound         time.Time
	unschedulable bool
	decided       bool
}

// ReplayServer runs the arrival sequence of one seed through a fresh
// `strata server --disable-agent` whose kube-scheduler runs Strata's
// profile, on simulated GPU nodes (Node objects kept Ready by renewing
// their Leases, and the ResourceSlices pkg/dra would publish). The policy
// in rc is ignored except for the input: the server's profile decides.
func ReplayServer(ctx context.Context, rc ReplayConfig, so ServerOptions) (res ServerResult, err error) {
	var gpuCap int64
	for _, n := range rc.Nodes {
		gpuCap += int64(n.GPUs) * gpu.MilliPerGPU
	}
	work, _ := rc.arrivals(gpuCap)

	dir, err := os.MkdirTemp("", "strata-gputrace-")
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	args := serverArgs
	if so.CPUProfile != "" || so.ExecTrace != "" {
		args = append(slices.Clone(args), "--profiling")
	}
	cmd, err := benchutil.StartServer(so.Bin, dir, args...)
	if err != nil {
		os.RemoveAll(dir)
		return res, err
	}
	defer func() {
		benchutil.Stop(cmd)
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, tail(filepath.Join(dir, "server.out"), 15))
		}
		if so.Keep {
			fmt.Fprintf(os.Stderr, "gputrace: server data dir kept: %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cfg, err := benchutil.WaitRESTConfig(wctx, dir)
	if err != nil {
		return res, err
	}
	// The replay's own writes must not be what limits the rate.
	cfg.QPS, cfg.Burst = 2000, 2000
	// As kube-controller-manager's clients do (e.g. the Job controller
	// creating pods): protobuf for built-in types.
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return res, err
	}
	if err := wait.PollUntilContextCancel(wctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := client.ResourceV1().DeviceClasses().Get(ctx, gpu.DriverName, metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return res, fmt.Errorf("API server or DeviceClass %s not ready: %w", gpu.DriverName, err)
	}
	res.Start = time.Since(t0)

	// Pods are never run: the namespace is exempt from image signature
	// checks (no image is resolved); Pod Security stays "restricted".
	if _, err := client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace,
		Labels: map[string]string{"security.strata.dev/image-policy": "exempt"}}}, metav1.CreateOptions{}); err != nil {
		return res, err
	}

	nodes, err := createNodes(ctx, client, rc.Nodes)
	if err != nil {
		return res, err
	}
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	go heartbeat(hbCtx, client, nodes)
	if err := waitUntainted(ctx, client, rc.Nodes, 2*time.Minute); err != nil {
		return res, err
	}

	// Claims (or templates) first, then pods: every claim is in the
	// scheduler's cache before its pod arrives.
	pods := make([]*v1.Pod, len(work))
	templates := map[string]bool{}
	claimsCPU0, err := benchutil.ProcessCPU(cmd.Process.Pid)
	if err != nil {
		return res, fmt.Errorf("server CPU time: %w", err)
	}
	for i, p := range work {
		pod, claim, tmpl := serverPod(i, p, so.Claims == "template")
		pods[i] = pod
		switch {
		case claim != nil:
			res.Claims++
			_, err = client.ResourceV1().ResourceClaims(namespace).Create(ctx, claim, metav1.CreateOptions{})
		case tmpl != nil && !templates[tmpl.Name]:
			res.Claims++
			templates[tmpl.Name] = true
			_, err = client.ResourceV1().ResourceClaimTemplates(namespace).Create(ctx, tmpl, metav1.CreateOptions{})
		}
		if err != nil {
			return res, err
		}
	}
	claimsCPU1, err := benchutil.ProcessCPU(cmd.Process.Pid)
	if err != nil {
		return res, fmt.Errorf("server CPU time: %w", err)
	}
	res.ClaimsCPU = claimsCPU1 - claimsCPU0

	index := make(map[string]int, len(pods))
	for i, p := range pods {
		index[p.Name] = i
	}
	var mu sync.Mutex
	states := make([]podState, len(pods))
	decided, lastChange := 0, time.Now()
	slots := make(chan struct{}, so.Inflight)
	observe := func(obj any) {
		pod, ok := obj.(*v1.Pod)
		if !ok {
			return
		}
		i, ok := index[pod.Name]
		if !ok {
			return
		}
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		st := &states[i]
		if st.node != "" {
			return
		}
		if pod.Spec.NodeName != "" {
			st.node, st.bound = pod.Spec.NodeName, now
			st.unschedulable = false
		} else if !st.unschedulable && unschedulable(pod) {
			st.unschedulable = true
		} else {
			return
		}
		lastChange = now
		if !st.decided {
			st.decided = true
			decided++
			<-slots
		}
	}
	inf := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace))
	podInf := inf.Core().V1().Pods().Informer()
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: observe, UpdateFunc: func(_, obj any) { observe(obj) },
	}); err != nil {
		return res, err
	}
	inf.Start(hbCtx.Done())
	inf.WaitForCacheSync(hbCtx.Done())

	// The pods are created in arrival order by so.Creators clients at
	// once, at most Inflight undecided at a time. All pods have priority
	// 0, so the scheduler's queue (PrioritySort: priority, then the time
	// the pod entered the queue) takes them in the order the API server
	// committed them: arrival order with one creator; with more, pods
	// created at the same moment may swap (counted in res.OutOfOrder).
	writes0, err := metricsPage(ctx, client)
	if err != nil {
		return res, err
	}
	var first time.Time
	var cpu0, clientCPU0 time.Duration
	var machine0 benchutil.MachineCPU
	var cs creation
	createErr := make(chan error, 1)
	go func() {
		cs = createPods(hbCtx, client, pods, max(1, so.Creators), slots, func() {
			mu.Lock()
			first = time.Now()
			cpu0, _ = benchutil.ProcessCPU(cmd.Process.Pid)
			clientCPU0, _ = benchutil.ProcessCPU(os.Getpid())
			machine0, _ = benchutil.ReadMachineCPU()
			mu.Unlock()
			if so.CPUProfile != "" {
				go fetchProfile(hbCtx, client, "profile", so.CPUProfile, 0, 10*time.Second)
			}
			if so.ExecTrace != "" {
				go fetchProfile(hbCtx, client, "trace", so.ExecTrace, 2*time.Second, 3*time.Second)
			}
		})
		createErr <- cs.err
	}()

	// Done: every pod decided and nothing changed for Quiet; or nothing
	// changed for 20x Quiet (undecided pods stay undecided).
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	created := false
	for {
		select {
		case err := <-createErr:
			if err != nil {
				return res, err
			}
			created = true
		case <-tick.C:
		case <-ctx.Done():
			return res, ctx.Err()
		}
		mu.Lock()
		idle := time.Since(lastChange)
		all := decided == len(pods)
		mu.Unlock()
		if created && ((all && idle >= so.Quiet) || idle >= 20*so.Quiet) {
			break
		}
	}

	cpu1, err := benchutil.ProcessCPU(cmd.Process.Pid)
	if err != nil {
		return res, fmt.Errorf("server CPU time: %w", err)
	}
	clientCPU1, err := benchutil.ProcessCPU(os.Getpid())
	if err != nil {
		return res, fmt.Errorf("bench CPU time: %w", err)
	}
	machine1, err := benchutil.ReadMachineCPU()
	if err != nil {
		return res, fmt.Errorf("machine CPU time: %w", err)
	}
	mu.Lock()
	res.ServerCPU, res.ClientCPU = cpu1-cpu0, clientCPU1-clientCPU0
	res.Machine = machine1.Sub(machine0)
	res.PeakRSS = benchutil.PeakRSS(cmd.Process.Pid)
	mu.Unlock()

	// Each bound pod's claim must be allocated on its node; its devices
	// complete the placement as in dra mode.
	claimByPod := map[string]*resourceapi.ResourceClaim{}
	cl, err := client.ResourceV1().ResourceClaims(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return res, err
	}
	for i := range cl.Items {
		c := &cl.Items[i]
		for _, r := range c.Status.ReservedFor {
			claimByPod[r.Name] = c
		}
	}

	mu.Lock()
	defer mu.Unlock()
	res.Pods = len(pods)
	res.Placements = make([]string, len(pods))
	var last time.Time
	for i, st := range states {
		switch {
		case st.node != "":
			res.Scheduled++
			res.Placements[i] = st.node
			if st.bound.After(last) {
				last = st.bound
			}
			if work[i].Task.NumGPU > 0 {
				devs, err := claimDevices(claimByPod[pods[i].Name], st.node)
				if err != nil {
					return res, fmt.Errorf("pod %s on %s: %w", pods[i].Name, st.node, err)
				}
				res.Placements[i] += ":" + devs
			}
		case st.unschedulable:
			res.Unschedulable++
		default:
			res.Undecided++
		}
	}
	res.AllocAt100, res.AllocAtEnd = allocation(work, res.Placements, gpuCap)
	res.Span = last.Sub(first)
	res.Decided = lastChange.Sub(first)
	res.Created, res.SlotWait, res.OutOfOrder, res.Order = cs.last.Sub(first), cs.slotWait, cs.outOfOrder(), cs.order()
	if res.Span > 0 {
		res.PodsPerSec = float64(res.Scheduled) / res.Span.Seconds()
	}
	if res.TaintedAfter, err = notReady(ctx, client, rc.Nodes); err != nil {
		return res, err
	}
	page, err := metricsPage(ctx, client)
	if err != nil {
		return res, err
	}
	res.Writes = apiWrites(writes0, page)
	res.Scheduler = schedulerMetrics(page)
	if so.MetricsOut != "" {
		err = os.WriteFile(so.MetricsOut, page, 0o644)
	}
	return res, err
}

// tail returns the last n lines of a file, for errors.
func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return file + ":\n" + strings.Join(lines[max(0, len(lines)-n):], "\n")
}

package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/strata-dev/strata/bench/internal/benchutil"
	"github.com/strata-dev/strata/pkg/gpu"
	"github.com/strata-dev/strata/pkg/gpushare"
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

// serverNode is the Node a kubelet would register for the trace node:
// capacity and allocatable from the trace (pods 1000), Ready, no taints
// (the API server's admission adds node.kubernetes.io/not-ready on create;
// the node lifecycle controller removes it once it sees Ready).
func serverNode(n TraceNode, now time.Time) *v1.Node {
	node := makeNode(n)
	node.UID = ""
	node.Status.Capacity[v1.ResourcePods] = *resource.NewQuantity(1000, resource.DecimalSI)
	node.Status.Allocatable = node.Status.Capacity.DeepCopy()
	node.Status.Conditions = []v1.NodeCondition{{
		Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", Message: "simulated by bench/gputrace",
		LastHeartbeatTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now),
	}}
	return node
}

// serverLease is the node's heartbeat in kube-node-lease, as the kubelet
// keeps it.
func serverLease(node *v1.Node, now time.Time) *coordv1.Lease {
	return &coordv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: node.Name, Namespace: v1.NamespaceNodeLease,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}},
		Spec: coordv1.LeaseSpec{HolderIdentity: ptr.To(node.Name), LeaseDurationSeconds: ptr.To[int32](40),
			RenewTime: &metav1.MicroTime{Time: now}},
	}
}

var notDNS = regexp.MustCompile(`[^a-z0-9]+`)

// shapeName names the ResourceClaimTemplate of a GPU shape: count, milli
// per GPU and accepted models.
func shapeName(t gpushare.Task) string {
	s := fmt.Sprintf("gpu-%dx%d", t.NumGPU, t.GPUMilli)
	if t.Models != "" {
		s += "-" + strings.Trim(notDNS.ReplaceAllString(strings.ToLower(t.Models), "-"), "-")
	}
	return s
}

// serverPod is makePod's pod and claim for the API server: no UIDs, a
// container that passes Pod Security "restricted" (the server's default),
// and with templates the claim replaced by the shape's template.
func serverPod(i int, p TracePod, template bool) (*v1.Pod, *resourceapi.ResourceClaim, *resourceapi.ResourceClaimTemplate) {
	pod, claim := makePod(i, p)
	pod.UID = ""
	pod.Spec.SecurityContext = &v1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532),
		SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}}
	pod.Spec.Containers[0].SecurityContext = &v1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
		Capabilities: &v1.Capabilities{Drop: []v1.Capability{"ALL"}}}
	if claim == nil {
		return pod, nil, nil
	}
	claim.UID = ""
	if !template {
		return pod, claim, nil
	}
	name := shapeName(p.Task)
	pod.Spec.ResourceClaims[0].ResourceClaimName = nil
	pod.Spec.ResourceClaims[0].ResourceClaimTemplateName = ptr.To(name)
	return pod, nil, &resourceapi.ResourceClaimTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       resourceapi.ResourceClaimTemplateSpec{Spec: claim.Spec},
	}
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

// creation is what createPods did.
type creation struct {
	last     time.Time     // the last create returned
	slotWait time.Duration // the dispatcher waited for an in-flight slot
	revs     []int64       // each pod's resourceVersion at create
	err      error
}

// createPods creates pods in order: one dispatcher takes an in-flight slot
// per pod and hands the pod to one of n workers. first runs once, before
// the first create.
func createPods(ctx context.Context, client kubernetes.Interface, pods []*v1.Pod, n int, slots chan struct{}, first func()) creation {
	c := creation{revs: make([]int64, len(pods))}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for i := range next {
				p, err := client.CoreV1().Pods(namespace).Create(ctx, pods[i], metav1.CreateOptions{})
				if err != nil {
					cancel(fmt.Errorf("create pod %s: %w", pods[i].Name, err))
					continue
				}
				c.revs[i], _ = strconv.ParseInt(p.ResourceVersion, 10, 64)
			}
		})
	}
dispatch:
	for i := range pods {
		w := time.Now()
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break dispatch
		}
		if i == 0 {
			first()
		} else {
			c.slotWait += time.Since(w)
		}
		select {
		case next <- i:
		case <-ctx.Done():
			break dispatch
		}
	}
	close(next)
	wg.Wait()
	c.last = time.Now()
	if ctx.Err() != nil {
		c.err = context.Cause(ctx)
	}
	return c
}

// outOfOrder counts the pods committed (resourceVersion) before an
// earlier arrival.
func (c creation) outOfOrder() int {
	n, hi := 0, int64(0)
	for _, r := range c.revs {
		if r < hi {
			n++
		}
		hi = max(hi, r)
	}
	return n
}

// order is the pods' indexes sorted by resourceVersion.
func (c creation) order() []int {
	order := make([]int, len(c.revs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(c.revs[a], c.revs[b]) })
	return order
}

// fetchProfile writes the server's /debug/pprof/<kind> over d, starting
// after delay, to file; a failure is reported, not fatal.
func fetchProfile(ctx context.Context, client kubernetes.Interface, kind, file string, delay, d time.Duration) {
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return
	}
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/"+kind).
		Param("seconds", strconv.Itoa(int(d.Seconds()))).Timeout(d + 30*time.Second).DoRaw(ctx)
	if err == nil {
		err = os.WriteFile(file, raw, 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gputrace: %s: %v\n", kind, err)
	}
}

// metricsPage is the server's /metrics page: the API server, etcd and
// kube-scheduler share the process and its registry.
func metricsPage(ctx context.Context, client kubernetes.Interface) ([]byte, error) {
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("server metrics: %w", err)
	}
	return raw, nil
}

// samples calls fn with each sample of the page whose metric name starts
// with prefix.
func samples(page []byte, prefix string, fn func(metric, labels string, v float64)) {
	for _, line := range strings.Split(string(page), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(val, &v); err != nil {
			continue
		}
		metric, labels, _ := strings.Cut(strings.TrimSuffix(name, "}"), "{")
		fn(metric, labels, v)
	}
}

// apiWrites is the difference of apiserver_request_total between two
// pages for the write verbs, as "VERB resource[/subresource] N", most
// first, after the total.
func apiWrites(before, after []byte) []string {
	count := func(page []byte) map[string]float64 {
		m := map[string]float64{}
		samples(page, "apiserver_request_total{", func(_, labels string, v float64) {
			switch verb := label(labels, "verb"); verb {
			case "POST", "PUT", "PATCH", "DELETE":
				res := label(labels, "resource")
				if sub := label(labels, "subresource"); sub != "" {
					res += "/" + sub
				}
				m[verb+" "+res] += v
			}
		})
		return m
	}
	b, a := count(before), count(after)
	var total float64
	type kv struct {
		k string
		v float64
	}
	var diffs []kv
	for k, v := range a {
		if d := v - b[k]; d > 0 {
			diffs = append(diffs, kv{k, d})
			total += d
		}
	}
	slices.SortFunc(diffs, func(x, y kv) int {
		if x.v != y.v {
			return cmp.Compare(y.v, x.v)
		}
		return strings.Compare(x.k, y.k)
	})
	out := []string{fmt.Sprintf("total %.0f", total)}
	for _, d := range diffs {
		out = append(out, fmt.Sprintf("%s %.0f", d.k, d.v))
	}
	return out
}

// schedulerMetrics summarises kube-scheduler's metrics from the page:
// attempts by result, mean attempt duration, mean duration per extension
// point.
func schedulerMetrics(page []byte) []string {
	sums, counts := map[string]float64{}, map[string]float64{}
	var out []string
	samples(page, "scheduler_", func(metric, labels string, v float64) {
		switch {
		case metric == "scheduler_schedule_attempts_total" && v > 0:
			out = append(out, fmt.Sprintf("attempts %s %.0f", label(labels, "result"), v))
		case metric == "scheduler_scheduling_attempt_duration_seconds_sum":
			sums["attempt "+label(labels, "result")] += v
		case metric == "scheduler_scheduling_attempt_duration_seconds_count":
			counts["attempt "+label(labels, "result")] += v
		case metric == "scheduler_framework_extension_point_duration_seconds_sum":
			sums[label(labels, "extension_point")] += v
		case metric == "scheduler_framework_extension_point_duration_seconds_count":
			counts[label(labels, "extension_point")] += v
		}
	})
	var keys []string
	for k := range sums {
		if counts[k] > 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s %.2f ms x %.0f", k, 1000*sums[k]/counts[k], counts[k]))
	}
	return out
}

// label returns a label's value from `a="x",b="y"`.
func label(labels, name string) string {
	for _, kv := range strings.Split(labels, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func unschedulable(pod *v1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse && c.Reason == v1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}

// claimDevices checks that the claim is allocated from the node's pool and
// returns its devices' indexes, "0,1".
func claimDevices(c *resourceapi.ResourceClaim, node string) (string, error) {
	if c == nil {
		return "", fmt.Errorf("no ResourceClaim reserved for the pod")
	}
	if c.Status.Allocation == nil {
		return "", fmt.Errorf("claim %s not allocated", c.Name)
	}
	var devs []string
	for _, r := range c.Status.Allocation.Devices.Results {
		if r.Pool != node {
			return "", fmt.Errorf("claim %s: device %s from pool %s", c.Name, r.Device, r.Pool)
		}
		devs = append(devs, strings.TrimPrefix(r.Device, "gpu-"))
	}
	return strings.Join(devs, ","), nil
}

// allocation is the GPU allocation ratio (% of capacity) when arrived
// demand first reaches capacity and at the end, from placements in arrival
// order, as run computes it.
func allocation(work []TracePod, placements []string, gpuCap int64) (at100, atEnd float64) {
	var allocated, arrived int64
	at100 = -1
	for i, p := range work {
		arrived += p.Task.GPUTotal()
		if placements[i] != "" {
			allocated += p.Task.GPUTotal()
		}
		if at100 < 0 && arrived >= gpuCap {
			at100 = 100 * float64(allocated) / float64(gpuCap)
		}
	}
	atEnd = 100 * float64(allocated) / float64(gpuCap)
	if at100 < 0 {
		at100 = atEnd
	}
	return at100, atEnd
}

// createNodes registers the simulated nodes (Node, Lease, ResourceSlice).
func createNodes(ctx context.Context, client kubernetes.Interface, trace []TraceNode) ([]*v1.Node, error) {
	var out []*v1.Node
	for _, n := range trace {
		now := time.Now()
		want := serverNode(n, now)
		node, err := client.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("create node %s: %w", n.Name, err)
		}
		// Status as the kubelet reports it (whatever create kept of it);
		// the node lifecycle controller may have tainted the new node in
		// between, so a conflict means: read it again and retry.
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			node.Status = want.Status
			updated, err := client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
			if apierrors.IsConflict(err) {
				if latest, getErr := client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{}); getErr == nil {
					node = latest
				}
				return err
			}
			if err == nil {
				node = updated
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("node %s status: %w", n.Name, err)
		}
		if _, err := client.CoordinationV1().Leases(v1.NamespaceNodeLease).Create(ctx, serverLease(node, now), metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("lease %s: %w", n.Name, err)
		}
		if n.GPUs > 0 {
			if _, err := client.ResourceV1().ResourceSlices().Create(ctx, traceSlice(n), metav1.CreateOptions{}); err != nil {
				return nil, fmt.Errorf("ResourceSlice of %s: %w", n.Name, err)
			}
		}
		out = append(out, node)
	}
	return out, nil
}

// heartbeat renews every node's Lease every 10 s, as the kubelet does, so
// that the node lifecycle controller keeps the nodes Ready (it marks a
// node Unknown and taints it after the grace period without a heartbeat).
func heartbeat(ctx context.Context, client kubernetes.Interface, nodes []*v1.Node) {
	leases := client.CoordinationV1().Leases(v1.NamespaceNodeLease)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Second):
		}
		for _, n := range nodes {
			l, err := leases.Get(ctx, n.Name, metav1.GetOptions{})
			if err == nil {
				l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
				_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
			}
			if err != nil && ctx.Err() == nil && !apierrors.IsConflict(err) {
				fmt.Fprintf(os.Stderr, "gputrace: renew lease of %s: %v\n", n.Name, err)
			}
		}
	}
}

// notReady lists the trace nodes that have a taint or are not Ready.
func notReady(ctx context.Context, client kubernetes.Interface, trace []TraceNode) ([]string, error) {
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, n := range trace {
		want[n.Name] = true
	}
	var bad []string
	for _, n := range list.Items {
		if !want[n.Name] {
			continue
		}
		delete(want, n.Name)
		ready := false
		for _, c := range n.Status.Conditions {
			ready = ready || (c.Type == v1.NodeReady && c.Status == v1.ConditionTrue)
		}
		if len(n.Spec.Taints) > 0 || !ready {
			bad = append(bad, fmt.Sprintf("%s (ready %v, taints %v)", n.Name, ready, n.Spec.Taints))
		}
	}
	for n := range want {
		bad = append(bad, n+" (missing)")
	}
	slices.Sort(bad)
	return bad, nil
}

func waitUntainted(ctx context.Context, client kubernetes.Interface, trace []TraceNode, timeout time.Duration) error {
	var bad []string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var err error
		bad, err = notReady(ctx, client, trace)
		return err == nil && len(bad) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("nodes not Ready and untainted after %v: %d, e.g. %v", timeout, len(bad), bad[:min(3, len(bad))])
	}
	return nil
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

// compareServer runs each seed through a real server and, on the same
// input, in process in sim mode (first-fit GPU choice) and dra mode for
// each policy, and prints whether the allocation ratio, the number of pods
// scheduled and each pod's node (and, against dra mode, its GPUs) are
// equal. It reports false if a run fails or a comparison differs.
func compareServer(ctx context.Context, nodes []TraceNode, pods []TracePod, seeds []int64, policies []Policy, tune float64, tieBreak string, maxPods int, so ServerOptions) bool {
	ok := true
	for _, seed := range seeds {
		type ref struct {
			name string
			r    Result
		}
		rc := ReplayConfig{Nodes: nodes, Pods: pods, Seed: seed, Tune: tune, MaxPods: maxPods}
		s, err := ReplayServer(ctx, rc, so)
		if err != nil {
			fmt.Printf("seed %d: server: %v\n", seed, err)
			return false
		}
		fmt.Printf("server seed %d, %d nodes, %d pods (claims per %s, %d in flight): GPU alloc %.2f%% @100%%, %.2f%% at end; %d bound, %d unschedulable, %d undecided; %.1f pods/s (bound pods / %.1f s from first create to last bind; last decision at %.1f s; pods created in %.1f s by %d clients, %.1f s of it waiting for an in-flight slot, %d committed behind a later arrival); server up in %.1f s\n  server process CPU %.1f s from the first create to the end (%.1f ms per pod); bench client %.1f s (%.1f ms per pod); before that, creating %d claims or templates one by one took %.2f ms of server CPU each; server peak RSS %.0f MB\n  machine over the same time: other processes %.1f s of CPU, steal %.1f%% of CPU time\n",
			seed, len(nodes), s.Pods, so.Claims, so.Inflight, s.AllocAt100, s.AllocAtEnd, s.Scheduled, s.Unschedulable, s.Undecided,
			s.PodsPerSec, s.Span.Seconds(), s.Decided.Seconds(), s.Created.Seconds(), so.Creators, s.SlotWait.Seconds(), s.OutOfOrder, s.Start.Seconds(),
			s.ServerCPU.Seconds(), 1000*s.ServerCPU.Seconds()/float64(max(1, s.Pods)),
			s.ClientCPU.Seconds(), 1000*s.ClientCPU.Seconds()/float64(max(1, s.Pods)),
			s.Claims, 1000*s.ClaimsCPU.Seconds()/float64(max(1, s.Claims)), s.PeakRSS,
			max(0, (s.Machine.Busy-s.ServerCPU-s.ClientCPU).Seconds()), 100*s.Machine.Steal.Seconds()/max(1e-9, s.Machine.Total.Seconds()))
		if len(s.Writes) > 0 {
			fmt.Printf("  API writes from the first pod create: %s\n", strings.Join(s.Writes, "; "))
		}
		if len(s.Scheduler) > 0 {
			fmt.Printf("  kube-scheduler: %s\n", strings.Join(s.Scheduler, "; "))
		}
		if len(s.TaintedAfter) > 0 {
			fmt.Printf("  nodes not Ready or tainted at the end: %d, e.g. %v\n", len(s.TaintedAfter), s.TaintedAfter[:min(3, len(s.TaintedAfter))])
			ok = false
		} else {
			fmt.Printf("  all %d nodes Ready and untainted at the end\n", len(nodes))
		}
		// The references replay the pods in the order the server's
		// scheduler received them.
		var refs []ref
		for _, p := range policies {
			first := p
			first.Picker = "first"
			rc := ReplayConfig{Nodes: nodes, Pods: pods, Seed: seed, Tune: tune, Policy: first, Mode: "sim", TieBreak: tieBreak, MaxPods: maxPods, Order: s.Order}
			sim, d, err := simAndDRA(ctx, rc)
			if err != nil {
				fmt.Printf("%s seed %d: %v\n", p.Name, seed, err)
				ok = false
				continue
			}
			refs = append(refs, ref{"sim " + p.Name, sim}, ref{"dra " + p.Name, d})
		}
		for _, r := range refs {
			withGPUs := strings.HasPrefix(r.name, "dra")
			diff, firstDiff := placementDiff(r.r.Placements, s.Placements, withGPUs)
			// Reported, not failed: ties are broken by StrataNodeOrder
			// and the references replay the server's queue order, but
			// under concurrent binding DynamicResources can find a GPU
			// share full that an in-process replay (one pod at a time)
			// fills (see bench/RESULTS.md).
			eq := func(b bool) string {
				if b {
					return "EQUAL"
				}
				return "DIFFERENT"
			}
			what := "node"
			if withGPUs {
				what = "node and GPUs"
			}
			fmt.Printf("  vs %-12s %.2f%% (%d scheduled, %.0f pods/s): alloc %s, scheduled %s, per-pod %s %s",
				r.name+":", r.r.AllocAtEnd, r.r.Scheduled, r.r.PodsPerSec,
				eq(r.r.AllocAtEnd == s.AllocAtEnd), eq(r.r.Scheduled == s.Scheduled), what, eq(diff == 0))
			if diff > 0 {
				fmt.Printf(" (%d of %d pods; first at arrival %d: %s %q with %d node(s) tied for the best total score, server %q)",
					diff, s.Pods, firstDiff, r.name, r.r.Placements[firstDiff], r.r.Ties[firstDiff], s.Placements[firstDiff])
			}
			fmt.Println()
		}
	}
	return ok
}

// placementDiff counts the pods placed differently ("" = unscheduled);
// without withGPUs only the node part of "node:gpus" is compared.
func placementDiff(a, b []string, withGPUs bool) (diff, first int) {
	first = -1
	for i := range min(len(a), len(b)) {
		// A pod without GPUs is "node" in one result, "node:" in another.
		x, y := strings.TrimSuffix(a[i], ":"), strings.TrimSuffix(b[i], ":")
		if !withGPUs {
			x, _, _ = strings.Cut(x, ":")
			y, _, _ = strings.Cut(y, ":")
		}
		if x != y {
			diff++
			if first < 0 {
				first = i
			}
		}
	}
	return diff, first
}

// Command gputrace replays the Alibaba GPU trace of the FGD paper (USENIX
// ATC'23) through kube-scheduler's framework runtime with Strata's GPU
// plugins, and prints the GPU allocation ratio each placement policy
// reaches at 100% and 130% of arrived GPU demand. See bench/RESULTS.md and
// pkg/scheduler/plugins/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"k8s.io/klog/v2"

	"github.com/strata-dev/strata/bench/internal/benchutil"
)

func main() {
	traceDir := flag.String("trace", "", "trace directory (default: ../shared/data/gpu-trace-v2023 next to the repository root)")
	podFile := flag.String("pods", "openb_pod_list_default.csv", "pod list file in the trace directory")
	seedsFlag := flag.String("seeds", "42-51", "seeds: a range A-B or a comma list")
	policiesFlag := flag.String("policies", "fgd,bestfit,default", "policies: "+strings.Join(policyNames(), ","))
	tune := flag.Float64("tune", 1.3, "tune ratio: arrived GPU demand / cluster GPU capacity")
	mode := flag.String("mode", "sim", "sim: GPUs filtered/reserved by StrataGPUSim; dra: a reduced replay (default --nodes 100 --max-pods 1000) through the in-tree DynamicResources plugin, compared with sim mode on the same input (see pkg/scheduler/plugins/README.md); server: the reduced replay through a real `strata server --disable-agent` (from --bin) with simulated GPU nodes, compared with sim and dra modes (default --seeds 42 --policies product)")
	bin := flag.String("bin", "bin", "server mode: directory holding the strata binary (make build)")
	claimsMode := flag.String("claims", "pod", "server mode: pod (a ResourceClaim per GPU pod, created before the pods) or template (a ResourceClaimTemplate per GPU shape)")
	inflight := flag.Int("inflight", 100, "server mode: at most N pods created and not yet bound or unschedulable")
	metricsOut := flag.String("metrics", "", "server mode: write the server's /metrics page (API server, etcd, kube-scheduler) at the end of each run to this file")
	creators := flag.Int("creators", 8, "server mode: pods created at once, in arrival order (1: strictly in order, paced by one client's latency)")
	execTrace := flag.String("exec-trace", "", "server mode: write a Go execution trace of the server process (3 s, from 2 s after the first pod) to this file")
	cpuProfile := flag.String("cpu-profile", "", "server mode: write a CPU profile of the server process (10 s from the first pod) to this file")
	keep := flag.Bool("keep", false, "server mode: keep the server's data dir (its logs) instead of removing it")
	quiet := flag.Duration("quiet", 3*time.Second, "server mode: done once every pod is decided and nothing changed for this long")
	maxPods := flag.Int("max-pods", 0, "cut the arrival sequence after N pods; 0 = all (dra mode: 1000)")
	tieBreak := flag.String("tiebreak", "random", "host among equal total scores: random (upstream kube-scheduler, what the product does) or order (the paper's simulator: lowest in a random node order fixed per seed)")
	limitNodes := flag.Int("nodes", 0, "use only the first N nodes (and scale the workload to them); 0 = all")
	gpuFit := flag.Bool("gpufit", true, "dra mode: run StrataGPUFit before DynamicResources, as the product does (false: the allocator filters every node)")
	verbose := flag.Bool("v", false, "print every run")
	flag.Parse()
	klog.SetOutput(os.Stderr)

	dir, err := findTraceDir(*traceDir)
	if err != nil {
		fatal(err)
	}
	nodes, err := parseFile(filepath.Join(dir, "openb_node_list_gpu_node.csv"), ParseNodes)
	if err != nil {
		fatal(err)
	}
	pods, err := parseFile(filepath.Join(dir, *podFile), ParsePods)
	if err != nil {
		fatal(err)
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *mode == "server" {
		if !set["seeds"] {
			*seedsFlag = "42"
		}
		if !set["policies"] {
			*policiesFlag = "product"
		}
	}
	if *mode == "dra" || *mode == "server" {
		if *limitNodes == 0 {
			*limitNodes = 100
		}
		if *maxPods == 0 {
			*maxPods = 1000
		}
	}
	if *limitNodes > 0 && *limitNodes < len(nodes) {
		nodes = nodes[:*limitNodes]
	}
	seeds, err := parseSeeds(*seedsFlag)
	if err != nil {
		fatal(err)
	}
	var policies []Policy
	for _, name := range strings.Split(*policiesFlag, ",") {
		p, ok := policyByName(strings.TrimSpace(name))
		if !ok {
			fatal(fmt.Errorf("unknown policy %q (have %s)", name, strings.Join(policyNames(), ", ")))
		}
		policies = append(policies, p)
	}
	if *tieBreak != "order" && *tieBreak != "random" {
		fatal(fmt.Errorf("unknown tiebreak %q (order, random)", *tieBreak))
	}
	if *mode != "sim" && *mode != "dra" && *mode != "server" {
		fatal(fmt.Errorf("unknown mode %q (sim, dra, server)", *mode))
	}
	if *claimsMode != "pod" && *claimsMode != "template" {
		fatal(fmt.Errorf("unknown --claims %q (pod, template)", *claimsMode))
	}

	var gpus int
	for _, n := range nodes {
		gpus += n.GPUs
	}
	fmt.Printf("GPU trace replay: %s (%d nodes, %d GPUs), %s (%d pods), tune %.2f, seeds %s, mode %s, GOMAXPROCS %d\nmachine: %s\n",
		dir, len(nodes), gpus, *podFile, len(pods), *tune, *seedsFlag, *mode, runtime.GOMAXPROCS(0), benchutil.Machine())

	ctx := context.Background()
	if *mode == "server" {
		// Interrupted: stop the server and remove its data dir.
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		ok := compareServer(ctx, nodes, pods, seeds, policies, *tune, *tieBreak, *maxPods,
			ServerOptions{Bin: *bin, Claims: *claimsMode, Inflight: max(1, *inflight), Quiet: *quiet, MetricsOut: *metricsOut, Keep: *keep, CPUProfile: *cpuProfile, ExecTrace: *execTrace, Creators: *creators})
		stop()
		if !ok {
			os.Exit(1)
		}
		return
	}
	if *mode == "dra" {
		if !compareDRA(ctx, nodes, pods, seeds, policies, *tune, *tieBreak, *maxPods, !*gpuFit) {
			os.Exit(1)
		}
		return
	}
	results := map[string][]Result{}
	for _, p := range policies {
		for _, seed := range seeds {
			r, err := Replay(ctx, ReplayConfig{Nodes: nodes, Pods: pods, Seed: seed, Tune: *tune, Policy: p, Mode: *mode, TieBreak: *tieBreak, MaxPods: *maxPods})
			if err != nil {
				fatal(fmt.Errorf("%s seed %d: %w", p.Name, seed, err))
			}
			results[p.Name] = append(results[p.Name], r)
			if *verbose {
				fmt.Printf("  %-10s seed %d: alloc %.2f%% @100%%, %.2f%% @%.0f%%; %d/%d pods scheduled; %.0f pods/s\n",
					p.Name, seed, r.AllocAt100, r.AllocAtEnd, *tune*100, r.Scheduled, r.Pods, r.PodsPerSec)
			}
		}
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "policy\talloc@100%% mean±sd\talloc@%.0f%% mean±sd\tmedian\tmin\tmax\tpods/s\tpublished@130%%\t\n", *tune*100)
	for _, p := range policies {
		rs := results[p.Name]
		a100, aEnd, pps := col(rs, func(r Result) float64 { return r.AllocAt100 }), col(rs, func(r Result) float64 { return r.AllocAtEnd }), col(rs, func(r Result) float64 { return r.PodsPerSec })
		m1, s1 := meanSD(a100)
		m2, s2 := meanSD(aEnd)
		mp, _ := meanSD(pps)
		pub := "-"
		if p.Published > 0 {
			pub = fmt.Sprintf("%.2f%%", p.Published)
		}
		fmt.Fprintf(tw, "%s\t%.2f%% ± %.2f\t%.2f%% ± %.2f\t%.2f%%\t%.2f%%\t%.2f%%\t%.0f\t%s\t\n", p.Name, m1, s1, m2, s2, median(aEnd), slicesMin(aEnd), slicesMax(aEnd), mp, pub)
	}
	tw.Flush()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "gputrace:", err)
	os.Exit(1)
}

// findTraceDir resolves the trace directory: the flag if given, else
// ../shared/data/gpu-trace-v2023 relative to the repository root (found by
// walking up from the working directory to go.mod; for a git worktree the
// main checkout's parent is tried too).
func findTraceDir(flagDir string) (string, error) {
	const rel = "shared/data/gpu-trace-v2023"
	if flagDir != "" {
		if _, err := os.Stat(filepath.Join(flagDir, "openb_node_list_gpu_node.csv")); err != nil {
			return "", fmt.Errorf("trace directory %s: %w", flagDir, err)
		}
		return flagDir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	var tried []string
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			for _, c := range []string{filepath.Join(d, "..", rel), filepath.Join(d, "..", "..", rel)} {
				tried = append(tried, c)
				if _, err := os.Stat(filepath.Join(c, "openb_node_list_gpu_node.csv")); err == nil {
					return filepath.Clean(c), nil
				}
			}
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	return "", fmt.Errorf("trace not found (tried %s); pass --trace DIR", strings.Join(tried, ", "))
}

func parseSeeds(s string) ([]int64, error) {
	if a, b, ok := strings.Cut(s, "-"); ok {
		lo, err1 := strconv.ParseInt(a, 10, 64)
		hi, err2 := strconv.ParseInt(b, 10, 64)
		if err1 != nil || err2 != nil || hi < lo {
			return nil, fmt.Errorf("bad seed range %q", s)
		}
		var out []int64
		for i := lo; i <= hi; i++ {
			out = append(out, i)
		}
		return out, nil
	}
	var out []int64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad seed %q", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func col(rs []Result, f func(Result) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func meanSD(x []float64) (float64, float64) {
	if len(x) == 0 {
		return 0, 0
	}
	var m float64
	for _, v := range x {
		m += v
	}
	m /= float64(len(x))
	if len(x) == 1 {
		return m, 0
	}
	var s float64
	for _, v := range x {
		s += (v - m) * (v - m)
	}
	return m, math.Sqrt(s / float64(len(x)-1))
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	y := append([]float64(nil), x...)
	sort.Float64s(y)
	if len(y)%2 == 1 {
		return y[len(y)/2]
	}
	return (y[len(y)/2-1] + y[len(y)/2]) / 2
}

func slicesMin(x []float64) float64 {
	m := math.Inf(1)
	for _, v := range x {
		m = min(m, v)
	}
	return m
}

func slicesMax(x []float64) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, v)
	}
	return m
}

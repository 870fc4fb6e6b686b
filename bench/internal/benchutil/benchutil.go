// Package benchutil holds what the benchmarks share: running a strata
// server for the length of a benchmark, and summary statistics.
package benchutil

import (
	"bufio"
	"context"
	"fmt"
	"github.com/strata-dev/strata/pkg/layout"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Stats returns the median, minimum and maximum of v (sorted in place).
func Stats(v []float64) (med, lo, hi float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		med = v[n/2]
	} else {
		med = (v[n/2-1] + v[n/2]) / 2
	}
	return med, v[0], v[n-1]
}

// SecondsStat formats the median and range of v (seconds).
func SecondsStat(v []float64) string {
	med, lo, hi := Stats(v)
	return fmt.Sprintf("%.2f s [%.2f-%.2f]", med, lo, hi)
}

// MBStat formats the median and range of v (MB).
func MBStat(v []float64) string {
	med, lo, hi := Stats(v)
	return fmt.Sprintf("%.0f MB [%.0f-%.0f]", med, lo, hi)
}

// Percentile returns the p-th percentile (0-100, nearest rank) of v,
// sorting v in place.
func Percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	rank := int(math.Ceil(p/100*float64(len(v)))) - 1
	return v[max(0, min(rank, len(v)-1))]
}

// Stop sends SIGTERM and waits up to 90 s before killing.
func Stop(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return // already stopped and waited for
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// WaitRESTConfig waits for DATA/admin.kubeconfig to be readable.
func WaitRESTConfig(ctx context.Context, dataDir string) (*rest.Config, error) {
	kubeconfig := layout.Layout{DataDir: dataDir}.AdminKubeconfig()
	for {
		if rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig); err == nil {
			return rc, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("no kubeconfig at %s", kubeconfig)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Server is a strata server on a temporary data dir, for one benchmark.
type Server struct {
	DataDir string
	REST    *rest.Config
	cmd     *exec.Cmd
}

// Start runs `strata server` from binDir on a new data dir and returns once
// the admin kubeconfig is published and pods can be created (the default
// service account exists).
func Start(ctx context.Context, binDir, name string, args ...string) (*Server, error) {
	dir, err := os.MkdirTemp("", "strata-bench-"+name+"-")
	if err != nil {
		return nil, err
	}
	cmd, err := StartServer(binDir, dir, args...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{DataDir: dir, cmd: cmd}
	if s.REST, err = WaitRESTConfig(ctx, dir); err != nil {
		s.Close()
		return nil, err
	}
	client, err := kubernetes.NewForConfig(s.REST)
	if err == nil {
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
			return err == nil, nil
		})
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("wait for the default service account: %w", err)
	}
	return s, nil
}

// Close stops the server and removes its data dir.
func (s *Server) Close() {
	Stop(s.cmd)
	os.RemoveAll(s.DataDir)
}

// StartServer runs `strata server` from binDir on dataDir, its output in
// dataDir/server.out.
func StartServer(binDir, dataDir string, args ...string) (*exec.Cmd, error) {
	out, err := os.Create(filepath.Join(dataDir, "server.out"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(binDir, "strata"), append([]string{"server", "--data-dir", dataDir}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Start()
	out.Close() // the child has its own copy
	if err != nil {
		return nil, fmt.Errorf("start strata server: %w", err)
	}
	return cmd, nil
}

// ProcessCPU is the CPU time (user + system) process pid has used, from
// /proc/<pid>/stat.
func ProcessCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count from its ")".
	_, rest, ok := strings.Cut(string(raw), ") ")
	if !ok {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	// utime and stime are fields 14 and 15, in clock ticks (USER_HZ,
	// 100 on Linux).
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// PeakRSS is the process's peak resident set (VmHWM from /proc), in MB;
// 0 if it cannot be read.
func PeakRSS(pid int) float64 { return statusMB(pid, "VmHWM:") }

// RSS is the process's resident set now (VmRSS), in MB; 0 if it cannot be
// read.
func RSS(pid int) float64 { return statusMB(pid, "VmRSS:") }

// RSSAnon is the anonymous part of RSS (heap, stacks; not the binary's
// pages), in MB.
func RSSAnon(pid int) float64 { return statusMB(pid, "RssAnon:") }

func statusMB(pid int, key string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// MachineCPU is the machine's CPU time from /proc/stat: Busy (user,
// nice, system, irq, softirq), Steal (time the hypervisor ran someone
// else while this machine had work) and Total (all of it, idle
// included), summed over all CPUs.
type MachineCPU struct {
	Busy, Steal, Total time.Duration
}

// ReadMachineCPU reads MachineCPU now.
func ReadMachineCPU() (MachineCPU, error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}, err
	}
	return parseMachineCPU(string(raw))
}

func parseMachineCPU(stat string) (MachineCPU, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return MachineCPU{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var t [8]time.Duration // user nice system idle iowait irq softirq steal
	for i := range t {
		v, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil {
			return MachineCPU{}, fmt.Errorf("/proc/stat: %w", err)
		}
		t[i] = time.Duration(v) * 10 * time.Millisecond // USER_HZ ticks
	}
	m := MachineCPU{Busy: t[0] + t[1] + t[2] + t[5] + t[6], Steal: t[7]}
	for _, v := range t {
		m.Total += v
	}
	return m, nil
}

// Sub is the CPU time between an earlier reading and m.
func (m MachineCPU) Sub(earlier MachineCPU) MachineCPU {
	return MachineCPU{Busy: m.Busy - earlier.Busy, Steal: m.Steal - earlier.Steal, Total: m.Total - earlier.Total}
}

// Machine describes this machine for a benchmark's header: CPU model,
// CPUs and memory, from /proc. Figures from machines that differ here
// (or in how busy their hosts are) are not comparable.
func Machine() string {
	cpuinfo, _ := os.ReadFile("/proc/cpuinfo")
	meminfo, _ := os.ReadFile("/proc/meminfo")
	return describeMachine(string(cpuinfo), string(meminfo))
}

func describeMachine(cpuinfo, meminfo string) string {
	model, cpus := "unknown CPU", 0
	for _, line := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			cpus++
		case "model name":
			model = strings.TrimSpace(v)
		}
	}
	mem := "unknown memory"
	for _, line := range strings.Split(meminfo, "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64); err == nil {
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs, %s", model, cpus, mem)
}

// ChildNamed is the pid of ppid's child whose command is name, or 0.
func ChildNamed(ppid int, name string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		i := strings.LastIndex(s, ")")
		if i < 0 || !strings.Contains(s[:i+1], "("+name+")") {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(ppid) {
			return pid
		}
	}
	return 0
}

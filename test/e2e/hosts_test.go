package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-dev/strata/pkg/layout"
	"github.com/strata-dev/strata/test/testnet"
)

// testNet is testnet.Net with the agents that run on its hosts.
type testNet struct {
	*testnet.Net
	hosts []*host
}

// host is one agent's machine: its namespace, address and data dir.
type host struct {
	name, ip, dataDir string
	net               *testnet.Net
	cmd               *exec.Cmd
	out               *syncBuffer
	exited            chan struct{}
}

// newTestNet makes the bridge; t.Cleanup stops every agent and removes the
// hosts and the bridge.
func newTestNet(t *testing.T, bridge, prefix string) *testNet {
	t.Helper()
	n, err := testnet.New(bridge, prefix)
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNet{Net: n}
	t.Cleanup(func() {
		for _, h := range tn.hosts {
			h.kill()
		}
		n.Close()
	})
	return tn
}

// addHost makes a host with a data dir of its own.
func (n *testNet) addHost(t *testing.T, name string) *host {
	t.Helper()
	ip, err := n.AddHost(name)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "strata-e2e-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	h := &host{name: name, ip: ip, dataDir: dir, net: n.Net}
	n.hosts = append(n.hosts, h)
	return h
}

// start runs `strata agent` inside the host's network namespace.
func (h *host) start(t *testing.T, args ...string) {
	t.Helper()
	h.out = &syncBuffer{}
	all := append([]string{"agent", "--data-dir", h.dataDir, "--node-name", h.name,
		"--cgroup-root", "/strata-" + h.name, "--pod-logs-dir", filepath.Join(h.dataDir, "pod-logs")}, args...)
	h.cmd = h.net.Command(h.name, bin("strata"), all...)
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.exited = make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(h.exited) }()
}

// stop sends SIGTERM and waits for a clean exit.
func (h *host) stop(t *testing.T) {
	t.Helper()
	if h.cmd == nil {
		return
	}
	defer func() { h.cmd = nil }()
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(90 * time.Second):
		_ = h.cmd.Process.Kill()
		t.Errorf("agent %s did not exit within 90s of SIGTERM\n%s", h.name, h.out.String())
		return
	}
	if st := h.cmd.ProcessState; !st.Success() {
		t.Errorf("agent %s exited with %v after SIGTERM\n%s", h.name, st, h.out.String())
	}
}

// crash is the host losing power: SIGKILL to the agent and, at once, to
// every process of the host (containerd, shims, pod processes: all that
// names its data or run dir or lives in its cgroup root). What a real
// machine would also lose (mounts, network namespaces of pods) stays, for
// the next start to clean up.
func (h *host) crash(t *testing.T) {
	t.Helper()
	_ = h.cmd.Process.Kill()
	<-h.exited
	h.cmd = nil
	runDir := layout.Layout{DataDir: h.dataDir}.RunDir()
	cgroupRoot := "/strata-" + h.name + "/"
	for round := 0; ; round++ {
		var pids []int
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if i := strings.LastIndexByte(string(stat), ')'); i < 0 || strings.HasPrefix(string(stat[i:]), ") Z") {
				continue // gone, or dead and waiting to be reaped
			}
			cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			cgroup, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
			c := string(cmdline)
			if strings.Contains(c, h.dataDir) || strings.Contains(c, runDir) || strings.Contains(string(cgroup), cgroupRoot) {
				pids = append(pids, pid)
			}
		}
		if len(pids) == 0 {
			return
		}
		if round == 50 {
			t.Fatalf("host %s: processes %v survive SIGKILL", h.name, pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill is the cleanup of last resort.
func (h *host) kill() {
	if h.cmd != nil {
		_ = h.cmd.Process.Kill()
		<-h.exited
	}
}

// leftovers lists what a stopped agent must not leave: processes naming
// its data dir, mounts under it, its pods' cgroups.
func (h *host) leftovers() []string {
	s := &server{dataDir: h.dataDir}
	leaks := s.ownLeftovers()
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/strata-" + h.name + "/kubepods/pod*")
	dirs2, _ := filepath.Glob("/sys/fs/cgroup/*/strata-" + h.name + "/kubepods/*/pod*")
	for _, d := range append(dirs, dirs2...) {
		leaks = append(leaks, "cgroup "+d)
	}
	return leaks
}

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-dev/strata/pkg/layout"
)

// testNet is a network of "hosts" on this machine: a bridge in the root
// network namespace (where the server runs) and, per host, a network
// namespace joined to it by a veth pair, with its own address. Nothing
// leaves the namespaces the test made.
type testNet struct {
	bridge string
	// prefix is the /24's first three octets; .1 is the root namespace.
	prefix string
	hosts  []*host
}

// host is one agent's machine: its namespace, address and data dir.
type host struct {
	name, ip, dataDir string
	cmd               *exec.Cmd
	out               *syncBuffer
	exited            chan struct{}
}

// newTestNet makes the bridge; t.Cleanup removes it and every host.
func newTestNet(t *testing.T, bridge, prefix string) *testNet {
	t.Helper()
	n := &testNet{bridge: bridge, prefix: prefix}
	run(t, "ip", "link", "add", bridge, "type", "bridge")
	t.Cleanup(func() {
		for _, h := range n.hosts {
			h.kill()
			_ = exec.Command("ip", "netns", "del", h.name).Run()
		}
		_ = exec.Command("ip", "link", "del", bridge).Run()
	})
	run(t, "ip", "addr", "add", n.RootIP()+"/24", "dev", bridge)
	run(t, "ip", "link", "set", bridge, "up")
	return n
}

// RootIP is the root namespace's address on the bridge: the server's node IP.
func (n *testNet) RootIP() string { return n.prefix + ".1" }

// addHost makes a namespace with address prefix.<index+2>.
func (n *testNet) addHost(t *testing.T, name string) *host {
	t.Helper()
	h := &host{name: name, ip: fmt.Sprintf("%s.%d", n.prefix, len(n.hosts)+2)}
	n.hosts = append(n.hosts, h)
	dir, err := os.MkdirTemp("", "strata-e2e-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	h.dataDir = dir
	veth := "v" + name
	run(t, "ip", "netns", "add", name)
	run(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
	run(t, "ip", "link", "set", veth, "master", n.bridge, "up")
	run(t, "ip", "-n", name, "addr", "add", h.ip+"/24", "dev", "eth0")
	run(t, "ip", "-n", name, "link", "set", "eth0", "up")
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	run(t, "ip", "-n", name, "route", "add", "default", "via", n.RootIP())
	return h
}

// start runs `strata agent` inside the host's network namespace (only
// that: nsenter --net keeps the mount namespace and /sys, which the
// kubelet and runc need; `ip netns exec` would remount /sys).
func (h *host) start(t *testing.T, args ...string) {
	t.Helper()
	h.out = &syncBuffer{}
	all := append([]string{"--net=/run/netns/" + h.name, bin("strata"), "agent", "--data-dir", h.dataDir,
		"--node-name", h.name, "--cgroup-root", "/strata-" + h.name, "--pod-logs-dir", filepath.Join(h.dataDir, "pod-logs")}, args...)
	h.cmd = exec.Command("nsenter", all...)
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

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

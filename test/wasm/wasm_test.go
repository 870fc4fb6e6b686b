// Package wasm_test drives containerd-shim-strata-wasm-v1 through a private
// containerd (the one make build builds, found through STRATA_BIN) and its
// CRI API, the way the kubelet does. It needs root; it uses its own bridge (stwasm0, 10.213.0.0/24),
// sockets and directories, and removes them at the end.
package wasm_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/strata-dev/strata/pkg/node"
	"github.com/strata-dev/strata/pkg/registry"
	"github.com/strata-dev/strata/pkg/registry/registrytest"
	"github.com/strata-dev/strata/pkg/wasm/wasmtest"
)

const (
	bridgeName = "stwasm0"
	podCIDR    = "10.213.0.0/24"
	shimName   = "containerd-shim-strata-wasm-v1"
)

type env struct {
	t        *testing.T
	dir      string
	shim     string
	rt       runtimeapi.RuntimeServiceClient
	img      runtimeapi.ImageServiceClient
	images   map[string]string
	logFile  string
	artifact string
	// nodeScope: one shim for all pods.
	nodeScope bool
}

func setup(t *testing.T, extraEnv ...string) *env {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (containerd, mounts, network namespaces): run it as root, as make test does")
	}
	// The containerd that make build builds next to strata.
	containerdBin, err := node.FindContainerd("", filepath.Join(os.Getenv("STRATA_BIN"), "containerd"))
	if err != nil {
		t.Fatalf("%v (set STRATA_BIN to the bin directory of make build)", err)
	}
	// Short: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "swasm")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, images: map[string]string{}, logFile: filepath.Join(dir, "containerd.log")}
	t.Cleanup(func() { e.removeAll() })
	bin := filepath.Join(dir, "bin")
	e.shim = filepath.Join(bin, shimName)
	goBuild(t, "", e.shim, "github.com/strata-dev/strata/cmd/containerd-shim-strata-wasm-v1")
	hello := filepath.Join(dir, "wasm-hello.wasm")
	httpMod := filepath.Join(dir, "wasm-http.wasm")
	goBuild(t, "wasip1", hello, "github.com/strata-dev/strata/examples/wasm-hello")
	goBuild(t, "wasip1", httpMod, "github.com/strata-dev/strata/examples/wasm-http")
	trap := filepath.Join(dir, "trap.wasm")
	invalid := filepath.Join(dir, "invalid.wasm")
	os.WriteFile(trap, wasmtest.Trap, 0o644)
	os.WriteFile(invalid, wasmtest.Invalid, 0o644)

	reg := registrytest.Start(t)
	for name, spec := range map[string]registry.ImageSpec{
		"pause":   {Wasm: hello, Entrypoint: []string{"/pause"}},
		"hello":   {Wasm: hello},
		"http":    {Wasm: httpMod, HTTPPort: 8080},
		"trap":    {Wasm: trap},
		"invalid": {Wasm: invalid},
	} {
		img, err := registry.Build(spec)
		if err != nil {
			t.Fatal(err)
		}
		ref := reg + "/wasm/" + name + ":v1"
		if _, err := registry.Push(img, ref); err != nil {
			t.Fatal(err)
		}
		e.images[name] = ref
	}
	art, err := registry.BuildWasmArtifact(hello)
	if err != nil {
		t.Fatal(err)
	}
	e.artifact = reg + "/wasm/artifact:v1"
	e.images["artifact"] = e.artifact
	if _, err := registry.Push(art, e.artifact); err != nil {
		t.Fatal(err)
	}
	if err := registry.WriteContainerdHosts(filepath.Join(dir, "hosts"), reg, "http://"+reg); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "cni"), 0o755)
	conflist := fmt.Sprintf(`{"cniVersion":"0.4.0","name":"strata-wasm-test","plugins":[{"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,"ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}}]}`,
		bridgeName, podCIDR, filepath.Join(dir, "ipam"))
	os.WriteFile(filepath.Join(dir, "cni", "10-wasm.conflist"), []byte(conflist), 0o644)

	// The same containerd configuration strata server runs, in a private
	// root, state and socket, with its own CNI network.
	ctrd := &node.Containerd{
		Binary: containerdBin, Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "state"),
		Socket: filepath.Join(dir, "c.sock"), SandboxImage: e.images["pause"],
		CNIBinDir: "/usr/lib/cni", CNIConfDir: filepath.Join(dir, "cni"), RegistryHostsDir: filepath.Join(dir, "hosts"),
		LogFile: e.logFile,
	}
	ctrd.AddWasmRuntime(e.shim, filepath.Join(dir, "cache"), filepath.Join(dir, "s"))
	ctrd.Env = append(ctrd.Env, extraEnv...)
	e.nodeScope = slices.Contains(extraEnv, "STRATA_WASM_SHIM_SCOPE=node")
	ctx, cancel := context.WithCancel(context.Background())
	if err := ctrd.Start(ctx, filepath.Join(dir, "config.toml")); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctrd.Stop()
		cancel()
		if t.Failed() {
			b, _ := os.ReadFile(e.logFile)
			keep := filepath.Join(os.TempDir(), "strata-wasm-test-containerd.log")
			_ = os.WriteFile(keep, b, 0o644)
			t.Logf("containerd log kept in %s", keep)
			lines := strings.Split(string(b), "\n")
			t.Logf("containerd log (tail):\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
	})
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, "c.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.rt, e.img = runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := e.rt.Version(ctx, &runtimeapi.VersionRequest{})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd not ready: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for name, ref := range e.images {
		if name == "artifact" {
			continue
		}
		if _, err := e.img.PullImage(context.Background(), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
	}
	return e
}

func goBuild(t *testing.T, goos, out, pkg string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = os.Environ()
	if goos != "" {
		cmd.Env = append(cmd.Env, "GOOS="+goos, "GOARCH=wasm")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// removeAll runs after containerd stopped: anything still mounted under
// the test directory is the test's own leftovers.
func (e *env) removeAll() {
	if l, err := netlink.LinkByName(bridgeName); err == nil {
		_ = netlink.LinkDel(l)
	}
	for _, m := range e.mountsUnder() {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
	_ = os.RemoveAll(e.dir)
}

func (e *env) mountsUnder() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], e.dir+"/") {
			out = append(out, fields[4])
		}
	}
	// Deepest first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// shimProcs lists our shim's processes (shims and sandbox pauses).
func (e *env) shimProcs() map[int]string {
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		var pid int
		if _, err := fmt.Sscan(d.Name(), &pid); err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || exe != e.shim {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out[pid] = strings.ReplaceAll(string(cmdline), "\x00", " ")
	}
	return out
}

type pod struct {
	id, ip string
	cfg    *runtimeapi.PodSandboxConfig
	logDir string
}

func (e *env) runPod(name string) *pod {
	e.t.Helper()
	logDir := filepath.Join(e.dir, "logs", name)
	os.MkdirAll(logDir, 0o755)
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: name + "-uid", Namespace: "default"},
		Hostname:     name,
		LogDirectory: logDir,
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: "wasm"})
	if err != nil {
		e.t.Fatalf("RunPodSandbox %s: %v", name, err)
	}
	p := &pod{id: resp.PodSandboxId, cfg: cfg, logDir: logDir}
	e.t.Cleanup(func() { e.removePod(p) })
	st, err := e.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.id})
	if err != nil {
		e.t.Fatal(err)
	}
	if st.Status.Network != nil {
		p.ip = st.Status.Network.Ip
	}
	return p
}

func (e *env) removePod(p *pod) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil && status.Code(err) != codes.NotFound {
		e.t.Errorf("StopPodSandbox: %v", err)
	}
	if _, err := e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
		e.t.Errorf("RemovePodSandbox: %v", err)
	}
}

type ctr struct {
	name   string
	image  string
	args   []string
	env    map[string]string
	memory int64
}

type started struct {
	id, logPath, termLog string
	latency              time.Duration
}

// start creates and starts a container as the kubelet would, including the
// termination-log mount.
func (e *env) start(p *pod, c ctr) (*started, error) {
	e.t.Helper()
	termLog := filepath.Join(p.logDir, c.name+".termination-log")
	os.WriteFile(termLog, nil, 0o644)
	var envs []*runtimeapi.KeyValue
	for k, v := range c.env {
		envs = append(envs, &runtimeapi.KeyValue{Key: k, Value: []byte(v)})
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: c.name},
		Image:    &runtimeapi.ImageSpec{Image: e.images[c.image]},
		Args:     c.args,
		Envs:     envs,
		LogPath:  c.name + ".log",
		Mounts:   []*runtimeapi.Mount{{ContainerPath: "/dev/termination-log", HostPath: termLog}},
		Linux:    &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: c.memory}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	begin := time.Now()
	cr, err := e.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: p.id, Config: cfg, SandboxConfig: p.cfg})
	if err != nil {
		e.t.Fatalf("CreateContainer %s: %v", c.name, err)
	}
	s := &started{id: cr.ContainerId, logPath: filepath.Join(p.logDir, c.name+".log"), termLog: termLog}
	if _, err := e.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		return s, err
	}
	s.latency = time.Since(begin)
	return s, nil
}

func (e *env) waitExit(id string, timeout time.Duration) *runtimeapi.ContainerStatus {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := e.rt.ContainerStatus(context.Background(), &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			e.t.Fatal(err)
		}
		if resp.Status.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return resp.Status
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("container %s still %s after %s", id, resp.Status.State, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func TestWasmPods(t *testing.T) {
	e := setup(t)

	t.Run("commands", func(t *testing.T) {
		p := e.runPod("wasm-commands")
		for _, tc := range []struct {
			c        ctr
			exitCode int32
			reason   string
			log      []string
			termLog  string
		}{
			{c: ctr{name: "hello", image: "hello", env: map[string]string{"GREETING": "hi there"}},
				exitCode: 0, reason: "Completed", log: []string{`stdout F hello from wasm: args=[]`, "stdout F greeting: hi there"}},
			{c: ctr{name: "exit3", image: "hello", args: []string{"exit", "3"}},
				exitCode: 3, reason: "Error", log: []string{`stdout F hello from wasm: args=["exit" "3"]`, "stderr F exiting with 3"}},
			{c: ctr{name: "oom", image: "hello", args: []string{"alloc", "200"}, memory: 64 << 20},
				exitCode: 137, reason: "OOMKilled", log: []string{"strata-wasm: OOMKilled: wasm module exceeded its memory limit"},
				termLog: "OOMKilled: wasm module exceeded its memory limit"},
			{c: ctr{name: "deadline", image: "hello", args: []string{"loop"}, env: map[string]string{"STRATA_WASM_RUN_TIMEOUT": "1s"}},
				exitCode: 124, reason: "Error", log: []string{"strata-wasm: DeadlineExceeded"},
				termLog: "DeadlineExceeded: wasm module stopped: run deadline exceeded"},
			{c: ctr{name: "trap", image: "trap"},
				exitCode: 134, reason: "Error", log: []string{"strata-wasm: Trap: wasm module trapped: wasm error: unreachable"},
				termLog: "Trap: wasm module trapped: wasm error: unreachable"},
		} {
			t.Run(tc.c.name, func(t *testing.T) {
				s, err := e.start(p, tc.c)
				if err != nil {
					t.Fatalf("StartContainer: %v", err)
				}
				t.Logf("create+start latency %s", s.latency)
				st := e.waitExit(s.id, 30*time.Second)
				if st.ExitCode != tc.exitCode || st.Reason != tc.reason {
					t.Errorf("exit %d reason %q, want %d %q", st.ExitCode, st.Reason, tc.exitCode, tc.reason)
				}
				logs := readFile(s.logPath)
				for _, want := range tc.log {
					if !strings.Contains(logs, want) {
						t.Errorf("log lacks %q:\n%s", want, logs)
					}
				}
				if got := readFile(s.termLog); !strings.Contains(got, tc.termLog) {
					t.Errorf("termination log %q, want it to contain %q", got, tc.termLog)
				}
				if _, err := e.rt.RemoveContainer(context.Background(), &runtimeapi.RemoveContainerRequest{ContainerId: s.id}); err != nil {
					t.Errorf("RemoveContainer: %v", err)
				}
			})
		}
		t.Run("invalid module", func(t *testing.T) {
			s, err := e.start(p, ctr{name: "invalid", image: "invalid"})
			if err == nil || !strings.Contains(err.Error(), "invalid wasm module") {
				t.Errorf("StartContainer error %v, want one about an invalid wasm module", err)
			}
			if got := readFile(s.termLog); !strings.Contains(got, "invalid wasm module") {
				t.Errorf("termination log %q lacks the reason", got)
			}
		})
	})

	t.Run("http", func(t *testing.T) {
		p := e.runPod("wasm-http")
		if p.ip == "" {
			t.Fatal("pod has no IP")
		}
		s, err := e.start(p, ctr{name: "web", image: "http", memory: 64 << 20,
			env: map[string]string{"GREETING": "wasm says hi", "STRATA_WASM_REQUEST_TIMEOUT": "3s"}})
		if err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
		t.Logf("HTTP container create+start latency %s", s.latency)
		base := "http://" + p.ip + ":8080"
		client := &http.Client{Timeout: 10 * time.Second}
		get := func(path string) (int, string) {
			resp, err := client.Get(base + path)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		first := time.Now()
		code, body := get("/")
		t.Logf("first request %s", time.Since(first))
		if code != 200 || body != "wasm says hi: GET /\n" {
			t.Errorf("GET / = %d %q", code, body)
		}
		for _, tc := range []struct {
			path string
			code int
			want string
		}{
			{"/echo?x=1", 200, "method=GET query=x=1"},
			{"/missing", 404, "not found: /missing"},
			{"/alloc?mib=200", 500, "OOMKilled: wasm module exceeded its memory limit"},
			{"/loop", 503, "DeadlineExceeded: wasm handler exceeded its 3s request deadline"},
			{"/healthz", 200, "ok\n"},
		} {
			code, body := get(tc.path)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("GET %s = %d %q, want %d %q", tc.path, code, body, tc.code, tc.want)
			}
		}
		// The idle pod's memory: its shim and its sandbox's pause process.
		time.Sleep(2 * time.Second)
		for pid, cmdline := range e.shimProcs() {
			t.Logf("pid %d RSS %s PSS %s (anon %s, file %s): %.60s", pid, procField(pid, "status", "VmRSS:"), procField(pid, "smaps_rollup", "Pss:"),
				procField(pid, "smaps_rollup", "Pss_Anon:"), procField(pid, "smaps_rollup", "Pss_File:"), cmdline)
		}
		st, err := e.rt.ContainerStatus(context.Background(), &runtimeapi.ContainerStatusRequest{ContainerId: s.id})
		if err != nil || st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("HTTP container status %v, %v; want running", st, err)
		}
		if _, err := e.rt.StopContainer(context.Background(), &runtimeapi.StopContainerRequest{ContainerId: s.id, Timeout: 5}); err != nil {
			t.Errorf("StopContainer: %v", err)
		}
		if st := e.waitExit(s.id, 10*time.Second); st.ExitCode != 0 {
			t.Errorf("HTTP container exit %d after SIGTERM, want 0", st.ExitCode)
		}
		if _, err := client.Get(base + "/"); err == nil {
			t.Errorf("still answering after stop")
		}
	})

	t.Run("scale", func(t *testing.T) { e.scaleHTTP(t, 5) })

	t.Run("oci wasm artifact", func(t *testing.T) {
		// CRI pulls a CNCF wasm artifact like any image; its container has
		// an empty root and the shim reads the module from containerd's
		// content store. The command is argv[0]: an artifact has none.
		if _, err := e.img.PullImage(context.Background(), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: e.artifact}}); err != nil {
			t.Fatalf("pull of a CNCF wasm artifact: %v", err)
		}
		p := e.runPod("wasm-artifact")
		s, err := e.start(p, ctr{name: "art", image: "artifact", args: []string{"hello"}})
		if err != nil {
			t.Fatal(err)
		}
		if st := e.waitExit(s.id, 30*time.Second); st.ExitCode != 0 || !strings.Contains(readFile(s.logPath), "hello from wasm: args=[]") {
			t.Fatalf("exit %d %s; log %q", st.ExitCode, st.Reason, readFile(s.logPath))
		}
	})

	t.Run("cleanup", func(t *testing.T) { e.checkCleanup(t) })
}

// TestWasmPodsNodeScope runs several pods on one shared shim.
func TestWasmPodsNodeScope(t *testing.T) {
	e := setup(t, "STRATA_WASM_SHIM_SCOPE=node")
	t.Run("scale", func(t *testing.T) { e.scaleHTTP(t, 5) })
	t.Run("cleanup", func(t *testing.T) { e.checkCleanup(t) })
}

// scaleHTTP starts n HTTP pods, checks each answers, and reports the
// memory of all shim processes (shims and pauses) per pod and the
// create+start latency with the module already in the compilation cache.
func (e *env) scaleHTTP(t *testing.T, n int) {
	var lat []time.Duration
	var ips []string
	before := e.shimProcs()
	for i := 0; i < n; i++ {
		p := e.runPod(fmt.Sprintf("scale-%d", i))
		s, err := e.start(p, ctr{name: "web", image: "http", memory: 64 << 20})
		if err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
		lat = append(lat, s.latency)
		ips = append(ips, p.ip)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, ip := range ips {
		resp, err := client.Get("http://" + ip + ":8080/healthz")
		if err != nil {
			t.Fatalf("GET %s: %v", ip, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", ip, resp.StatusCode)
		}
	}
	time.Sleep(2 * time.Second)
	// Only the processes these pods added (in node scope the shared shim
	// is counted whole, though it may predate them).
	var pss, rssSum, procs int
	for pid := range e.shimProcs() {
		if _, old := before[pid]; old && !e.nodeScope {
			continue
		}
		procs++
		pss += kb(procField(pid, "smaps_rollup", "Pss:"))
		rssSum += kb(procField(pid, "status", "VmRSS:"))
	}
	t.Logf("%d idle HTTP pods: %d shim processes, PSS %d kB total, %d kB per pod (RSS sum %d kB); create+start latencies %v",
		n, procs, pss, pss/n, rssSum, lat)
}

func kb(s string) int {
	var n int
	fmt.Sscan(strings.TrimSuffix(s, " kB"), &n)
	return n
}

func (e *env) checkCleanup(t *testing.T) {
	{
		resp, err := e.rt.ListPodSandbox(context.Background(), &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, sb := range resp.Items {
			e.removePod(&pod{id: sb.Id})
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(e.shimProcs()) > 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if procs := e.shimProcs(); len(procs) > 0 {
			t.Errorf("shim processes left: %v", procs)
		}
		if ents, _ := os.ReadDir(filepath.Join(e.dir, "s")); len(ents) > 0 {
			t.Errorf("shim sockets left: %v", ents)
		}
		var leftover []string
		for _, m := range e.mountsUnder() {
			if strings.Contains(m, "/rootfs") {
				leftover = append(leftover, m)
			}
		}
		if len(leftover) > 0 {
			t.Errorf("rootfs mounts left: %v", leftover)
		}
		filepath.WalkDir(filepath.Join(e.dir, "state", "io.containerd.runtime.v2.task"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				t.Errorf("task state left: %s", p)
			}
			return nil
		})
	}
}

func procField(pid int, file, field string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			return strings.TrimSpace(strings.TrimPrefix(l, field))
		}
	}
	return "?"
}

package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	certutil "k8s.io/client-go/util/cert"

	"github.com/strata-dev/strata/pkg/controlplane/pki"
	"github.com/strata-dev/strata/pkg/layout"
)

// listener is one row of the README's port table, as the shared server
// (no --node-ip) opens it.
type listener struct {
	proto, host string // host "" matches any address; "node" the node's
	port        int    // 0: any port (containerd's streaming server)
	what        string
}

// sharedListeners are every socket `strata server` and its containerd
// listen on with the shared server's flags.
var sharedListeners = []listener{
	{"tcp", "", 6443, "kube-apiserver"},
	{"tcp", "127.0.0.1", 2379, "etcd client"},
	{"tcp", "127.0.0.1", 2380, "etcd peer"},
	{"tcp", "127.0.0.1", 5000, "registry"},
	{"tcp", "127.0.0.1", 9443, "admission webhooks"},
	{"tcp", "", 8088, "function gateway"},
	{"tcp", "127.0.0.1", 9464, "metrics"},
	{"tcp", "node", 10250, "kubelet"},
	{"tcp", "127.0.0.1", 10248, "kubelet healthz"},
	{"tcp", "127.0.0.1", 10249, "kube-proxy metrics"},
	{"tcp", "127.0.0.1", 10256, "kube-proxy healthz"},
	{"tcp", "10.88.0.1", 53, "cluster DNS"},
	{"udp", "10.88.0.1", 53, "cluster DNS"},
	{"tcp", "127.0.0.1", 0, "containerd CRI streaming"},
}

// TestListeners checks the port table against what the server really
// opens, and that each listener refuses who it must.
func TestListeners(t *testing.T) {
	s := cluster(t)
	pkiDir := filepath.Join(s.dataDir, "pki")
	ca, err := pki.LoadOrCreateCA(pkiDir, "ca", "strata-ca")
	if err != nil {
		t.Fatal(err)
	}
	pool := s.clientTLS(t, "").RootCAs
	admin := s.clientTLS(t, "admin").Certificates[0]
	now := time.Now()
	// A certificate of the cluster CA for a user with no rights, and a
	// service account token with none either.
	nobody := clientCertIn(t, ca, "e2e-listener-nobody", nil, now.Add(-time.Hour), now.Add(time.Hour))
	s.mustKubectl(t, "create", "serviceaccount", "listener-probe", "-n", "default")
	t.Cleanup(func() { s.kubectl(t, "delete", "serviceaccount", "listener-probe", "-n", "default") })
	token := strings.TrimSpace(s.mustKubectl(t, "create", "token", "listener-probe", "-n", "default"))
	nodeIP := s.nodeInternalIP(t)

	t.Run("every socket the server opens is in the table", func(t *testing.T) {
		got := serverListeners(t, s)
		for _, l := range got {
			if !slices.ContainsFunc(sharedListeners, func(want listener) bool { return want.matches(l, nodeIP) }) {
				t.Errorf("%s %s:%d is open but not in the port table (README, sharedListeners)", l.proto, l.host, l.port)
			}
		}
		for _, want := range sharedListeners {
			if !slices.ContainsFunc(got, func(l listener) bool { return want.matches(l, nodeIP) }) {
				t.Errorf("%s (%s port %d) is in the table but not open", want.what, want.proto, want.port)
			}
		}
	})

	type client struct {
		name   string
		certs  []tls.Certificate
		bearer string
		roots  *x509.CertPool // the cluster CA unless set
	}
	anonymous := client{name: "anonymous"}
	withToken := client{name: "a token without rights", bearer: token}
	withCert := client{name: "a cluster certificate without rights", certs: []tls.Certificate{nobody}}
	asAdmin := client{name: "the admin certificate", certs: []tls.Certificate{admin}}
	// etcd's rows trust etcd's own CA, so that only the client's
	// certificate decides: no certificate, the cluster CA's administrator,
	// and the API server's etcd client as the control.
	etcdRoots, err := certutil.NewPool(filepath.Join(pkiDir, "etcd-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	apiserverEtcd, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "apiserver-etcd-client.crt"), filepath.Join(pkiDir, "apiserver-etcd-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	etcdAnonymous := client{name: "anonymous", roots: etcdRoots}
	etcdAdmin := client{name: "the admin certificate (cluster CA)", certs: []tls.Certificate{admin}, roots: etcdRoots}
	etcdAPIServer := client{name: "the API server's etcd certificate", certs: []tls.Certificate{apiserverEtcd}, roots: etcdRoots}
	do := func(c client, url string) (int, string, error) {
		roots := pool
		if c.roots != nil {
			roots = c.roots
		}
		cfg := &tls.Config{RootCAs: roots}
		if len(c.certs) > 0 {
			// Presented whatever CAs the server asks for: Go's client would
			// otherwise keep quiet about a certificate of another CA, and
			// the server's refusal of it would go untested.
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c.certs[0], nil }
		}
		tr := &http.Transport{TLSClientConfig: cfg}
		defer tr.CloseIdleConnections()
		var rt http.RoundTripper = tr
		if c.bearer != "" {
			rt = &bearer{token: c.bearer, rt: tr}
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: rt}).Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, string(b), nil
	}
	kubelet := "https://" + net.JoinHostPort(nodeIP, "10250") + "/pods"
	for _, tc := range []struct {
		listener, url string
		c             client
		want          int    // 0: the TLS handshake or first read fails
		body          string // in the body, or for want 0 in the error
	}{
		{"metrics", "https://127.0.0.1:9464/metrics", anonymous, 401, "Unauthorized"},
		{"metrics", "https://127.0.0.1:9464/metrics", withToken, 403, `cannot get the path "/metrics"`},
		{"metrics", "https://127.0.0.1:9464/metrics", withCert, 403, `"e2e-listener-nobody" cannot get the path "/metrics"`},
		{"metrics", "https://127.0.0.1:9464/metrics", asAdmin, 200, "go_goroutines"},
		{"kubelet", kubelet, anonymous, 401, "Unauthorized"},
		{"kubelet", kubelet, withToken, 403, "Forbidden"},
		{"webhooks", "https://127.0.0.1:9443/validate-pods", anonymous, 0, "certificate required"},
		{"webhooks", "https://127.0.0.1:9443/validate-pods", asAdmin, 0, "bad certificate"},
		{"etcd", "https://127.0.0.1:2379/version", etcdAnonymous, 0, "certificate required"},
		{"etcd", "https://127.0.0.1:2379/version", etcdAdmin, 0, "unknown certificate authority"},
		{"etcd", "https://127.0.0.1:2379/version", etcdAPIServer, 200, "etcdserver"},
	} {
		t.Run(tc.listener+" answers "+tc.c.name, func(t *testing.T) {
			status, body, err := do(tc.c, tc.url)
			switch {
			case tc.want == 0 && err == nil:
				t.Fatalf("GET %s as %s: HTTP %d, want the connection refused at the TLS handshake", tc.url, tc.c.name, status)
			case tc.want == 0 && !strings.Contains(err.Error(), tc.body):
				t.Fatalf("GET %s as %s: %v, want a refusal saying %q", tc.url, tc.c.name, err, tc.body)
			case tc.want == 0:
				t.Logf("refused: %v", err)
			case err != nil:
				t.Fatalf("GET %s as %s: %v", tc.url, tc.c.name, err)
			case status != tc.want || !strings.Contains(body, tc.body):
				t.Fatalf("GET %s as %s: HTTP %d %q, want %d with %q", tc.url, tc.c.name, status, body, tc.want, tc.body)
			}
		})
	}

	t.Run("no Unix socket of the server lets other users connect", func(t *testing.T) {
		n := 0
		for _, root := range []string{s.dataDir, layout.Layout{DataDir: s.dataDir}.RunDir()} {
			err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
				if err != nil {
					return nil // pods' files come and go under the walk
				}
				// Pods' own files (volumes, container filesystems) are theirs.
				if d.IsDir() && (d.Name() == "pods" || strings.Contains(d.Name(), "snapshotter")) {
					return filepath.SkipDir
				}
				if d.Type()&os.ModeSocket == 0 {
					return nil
				}
				fi, err := os.Lstat(path)
				if err != nil {
					return nil
				}
				n++
				st := fi.Sys().(*syscall.Stat_t)
				// Connecting to a Unix socket needs write permission on it.
				if st.Uid != 0 || fi.Mode().Perm()&0o002 != 0 || (st.Gid != 0 && fi.Mode().Perm()&0o020 != 0) {
					t.Errorf("socket %s: owner %d group %d mode %s: other users may connect", path, st.Uid, st.Gid, fi.Mode().Perm())
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if n < 3 {
			t.Fatalf("found %d sockets under the data and run dirs; containerd's, NRI's and the kubelet's at least were expected", n)
		}
		t.Logf("%d Unix sockets checked", n)
	})

	t.Run("the registry's loopback listener serves root only", func(t *testing.T) {
		if status, body := registryGetAs(t, 65534); status != "403" || !strings.Contains(body, "serves root only (this connection is uid 65534)") {
			t.Fatalf("GET http://127.0.0.1:5000/v2/ as uid 65534: %s %s, want 403 naming the uid", status, body)
		}
		if status, body := registryGetAs(t, 0); status != "200" {
			t.Fatalf("GET http://127.0.0.1:5000/v2/ as root: %s %s, want 200", status, body)
		}
	})
}

// nodeInternalIP is the server node's InternalIP, where its kubelet listens.
func (s *server) nodeInternalIP(t *testing.T) string {
	t.Helper()
	ip := s.mustKubectl(t, "get", "nodes", "-o", `jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}`)
	if net.ParseIP(ip) == nil {
		t.Fatalf("node InternalIP %q", ip)
	}
	return ip
}

// matches reports whether l is this row of the table.
func (want listener) matches(l listener, nodeIP string) bool {
	host := want.host
	if host == "node" {
		host = nodeIP
	}
	return want.proto == l.proto && (want.port == 0 || want.port == l.port) &&
		(host == "" && (l.host == "0.0.0.0" || l.host == "::") || host == l.host)
}

// registryGetAs asks the registry's loopback listener for /v2/ from a
// process running as uid and returns the status code and body.
func registryGetAs(t *testing.T, uid uint32) (string, string) {
	t.Helper()
	// The test binary's directory is private to root: run a copy of curl's
	// job, netcheck, from a directory anyone may read.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "netcheck")
	raw, err := os.ReadFile(bin("netcheck"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(dir); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(exe, "--timeout", "1s", "http://127.0.0.1:5000/v2/")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	out, err := cmd.CombinedOutput()
	if err == nil {
		return "200", string(out)
	}
	if _, after, ok := strings.Cut(string(out), ": status "); ok {
		return strings.Fields(after)[0], string(out)
	}
	return "?", fmt.Sprintf("%v: %s", err, out)
}

// serverListeners are the listening TCP and bound UDP sockets of the
// server process and its children (containerd), from the kernel's tables.
func serverListeners(t *testing.T, s *server) []listener {
	t.Helper()
	pids := append([]int{s.cmd.Process.Pid}, childPIDs(s.cmd.Process.Pid)...)
	inodes := map[string]bool{}
	for _, pid := range pids {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
				inodes[strings.TrimSuffix(inode, "]")] = true
			}
		}
	}
	var out []listener
	for _, table := range []struct{ proto, file, state string }{
		{"tcp", "/proc/net/tcp", "0A"}, {"tcp", "/proc/net/tcp6", "0A"},
		{"udp", "/proc/net/udp", "07"}, {"udp", "/proc/net/udp6", "07"},
	} {
		f, err := os.Open(table.file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != table.state || !inodes[fields[9]] {
				continue
			}
			host, port := procAddr(t, fields[1])
			out = append(out, listener{proto: table.proto, host: host, port: port})
		}
		f.Close()
	}
	return out
}

// procAddr decodes /proc/net/tcp's "0100007F:0050" (little-endian words).
func procAddr(t *testing.T, s string) (string, int) {
	hexIP, hexPort, _ := strings.Cut(s, ":")
	raw, err := hex.DecodeString(hexIP)
	if err != nil {
		t.Fatalf("address %q: %v", s, err)
	}
	for i := 0; i+4 <= len(raw); i += 4 {
		slices.Reverse(raw[i : i+4])
	}
	ip := net.IP(raw)
	if v4 := ip.To4(); v4 != nil && len(raw) == 16 && !ip.Equal(net.IPv6zero) {
		ip = v4
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		t.Fatalf("port %q: %v", s, err)
	}
	return ip.String(), int(port)
}

// childPIDs are pid's descendants.
func childPIDs(pid int) []int {
	var out []int
	// Each thread has its own list: Go forks from any of them.
	var raw []byte
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		raw = append(append(raw, b...), ' ')
	}
	for _, f := range strings.Fields(string(raw)) {
		if c, err := strconv.Atoi(f); err == nil {
			out = append(append(out, c), childPIDs(c)...)
		}
	}
	return out
}

// registryRefusals checks the registry's TLS listener on nodeIP:5000 (a
// server started with --node-ip): anonymous and unauthorized callers are
// refused, pulls need strata:registry:pull, pushes strata:registry:push,
// and a token works as a Basic password as registry clients send it.
// (Agents pulling with their node certificates is what the rest of
// TestAgents runs on.)
func (s *server) registryRefusals(t *testing.T, nodeIP string) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: s.clientTLS(t, "")}
	defer tr.CloseIdleConnections()
	base := "https://" + net.JoinHostPort(nodeIP, "5000")
	s.mustKubectl(t, "create", "serviceaccount", "registry-user", "-n", "default")
	token := strings.TrimSpace(s.mustKubectl(t, "create", "token", "registry-user", "-n", "default"))
	ask := func(method, path, token string, basic bool) (int, http.Header, string) {
		req, _ := http.NewRequest(method, base+path, nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
		switch {
		case basic:
			req.SetBasicAuth("anyone", token)
		case token != "":
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: tr}).Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, resp.Header, string(b)
	}
	const manifest, upload = "/v2/strata/pause/manifests/3.10", "/v2/e2e/pushed/blobs/uploads/"
	code, hdr, body := ask(http.MethodGet, "/v2/", "", false)
	if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("anonymous GET /v2/: %d %s (WWW-Authenticate %q), want 401 with a Basic challenge", code, body, hdr.Get("WWW-Authenticate"))
	}
	for _, c := range []struct {
		grant        string // ClusterRole bound before the checks
		method, path string
		basic        bool
		want         int
		body         string
	}{
		{"", http.MethodGet, "/v2/", false, http.StatusOK, ""},
		{"", http.MethodHead, manifest, false, http.StatusForbidden, ""},
		{"", http.MethodGet, manifest, true, http.StatusForbidden, `cannot get repositories.registry.strata.dev "strata/pause"`},
		{"strata:registry:pull", http.MethodGet, manifest, true, http.StatusOK, `"schemaVersion"`},
		{"strata:registry:pull", http.MethodPost, upload, false, http.StatusForbidden, `cannot create repositories.registry.strata.dev "e2e/pushed"`},
		{"strata:registry:push", http.MethodPost, upload, true, http.StatusAccepted, ""},
	} {
		if c.grant != "" {
			binding := "e2e-" + strings.ReplaceAll(c.grant, ":", "-")
			if _, err := s.kubectl(t, "get", "clusterrolebinding", binding); err != nil {
				s.mustKubectl(t, "create", "clusterrolebinding", binding, "--clusterrole", c.grant, "--serviceaccount", "default:registry-user")
			}
		}
		// Denials are cached for 10 s: a grant shows within that.
		var code int
		var body string
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Second) {
			code, _, body = ask(c.method, c.path, token, c.basic)
			if code == c.want || time.Now().After(deadline) {
				break
			}
		}
		if code != c.want || !strings.Contains(body, c.body) {
			t.Errorf("%s %s with a token (grant %q): %d %s, want %d with %q", c.method, c.path, c.grant, code, body, c.want, c.body)
		}
	}
}

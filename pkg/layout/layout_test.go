package layout

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "/var/lib/strata", want: "/var/lib/strata"},
		{in: "/var/lib/strata/", want: "/var/lib/strata"},
		{in: "", err: "the data dir is empty: pass --data-dir"},
	} {
		l, err := New(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("New(%q) err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || l.DataDir != tc.want {
			t.Errorf("New(%q) = %q, %v; want %q", tc.in, l.DataDir, err, tc.want)
		}
	}
	rel, err := New("state")
	if err != nil || !filepath.IsAbs(rel.DataDir) {
		t.Errorf("relative data dir not made absolute: %q %v", rel.DataDir, err)
	}
}

// Runtime paths live under /run, apart per data dir, and socket paths stay
// within the 108 bytes a Unix socket address allows.
func TestRunDir(t *testing.T) {
	long := Layout{DataDir: "/" + strings.Repeat("very-long-directory-name/", 10)}
	a, b := Layout{DataDir: "/var/lib/strata"}, Layout{DataDir: "/tmp/other"}
	if a.RunDir() != (Layout{DataDir: "/var/lib/strata"}).RunDir() {
		t.Fatal("run dir is not stable")
	}
	if a.RunDir() == b.RunDir() {
		t.Fatal("two data dirs share a run dir")
	}
	for _, l := range []Layout{a, long} {
		for _, sock := range []string{l.ContainerdSocket(), filepath.Join(l.WasmShimSocketDir(), strings.Repeat("f", 64))} {
			if len(sock) >= 108 {
				t.Errorf("socket path %q is %d bytes", sock, len(sock))
			}
			if !strings.HasPrefix(sock, "/run/strata/") {
				t.Errorf("socket %q is not under /run/strata", sock)
			}
		}
	}
}

// Every persistent path is under the data dir.
func TestPathsUnderDataDir(t *testing.T) {
	l := Layout{DataDir: "/d"}
	key, pub, pw := l.SigningKey()
	for _, p := range []string{l.Lock(), l.StrataLog(), l.EtcdDir(), l.PKIDir(), l.CAFile(), l.Kubeconfig("kubelet"),
		l.AdminKubeconfig(), l.RegistryDir(), key, pub, pw, l.ContainerdRoot(), l.KubeletDir(), l.NRIPluginDir(),
		l.SchedulerConfig(), l.FunctionWasmCache(), l.WasmShimCacheDir()} {
		if !strings.HasPrefix(p, "/d/") {
			t.Errorf("%q is not under the data dir", p)
		}
	}
}

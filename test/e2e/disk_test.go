package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Issue 28, disk trouble: the data dir on a small tmpfs fills up. The server
// says so on its terminal and in /readyz, refuses API writes (507) and
// registry pushes while reads still work, takes writes again once space
// returns, and etcd comes through unharmed: after a restart its hash of
// the revision taken before the disk filled is unchanged and every write
// acknowledged before and after is there.
func TestDiskFull(t *testing.T) {
	dir, err := os.MkdirTemp("", "strata-e2e-disk-")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1536m,mode=0755"); err != nil {
		t.Fatalf("mount a tmpfs for the data dir: %v", err)
	}
	// Registered first, so it runs last: after the server stopped.
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
		os.Remove(dir)
	})
	const minFree = 256 << 20 // the default --min-free-disk
	s := ownServerIn(t, dir, nil, nil)
	ctx := context.Background()
	cms := s.client.CoreV1().ConfigMaps("default")
	write := func(name string) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"written": name}}
		_, err := cms.Create(ctx, cm, metav1.CreateOptions{})
		return err
	}
	if err := write("before-full"); err != nil {
		t.Fatal(err)
	}
	etcd := etcdClient(t, s.dataDir)
	hashRev, hashCompact, hash, err := etcdHash(ctx, etcd)
	if err != nil {
		t.Fatal(err)
	}
	readyz := func(t *testing.T) (int, string) {
		t.Helper()
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: s.clientTLS(t, "admin")}}
		resp, err := c.Get("https://127.0.0.1:6443/readyz?verbose")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// Fill the file system to half the minimum.
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, free-minFree/2); err != nil {
		t.Fatalf("fill the data dir: %v", err)
	}
	f.Close()
	t.Logf("data dir: %d MiB free of %d MiB before filling", free>>20, int64(st.Blocks)*st.Bsize>>20)

	t.Run("a full data dir is reported and writes are refused", func(t *testing.T) {
		waitFor(t, 15*time.Second, "the terminal to report the full disk", func(context.Context) (bool, error) {
			return strings.Contains(s.out.String(), "below --min-free-disk 256Mi: the API server and the registry refuse writes"), nil
		})
		code, body := readyz(t)
		if code != http.StatusInternalServerError || !strings.Contains(body, "[-]strata-disk-space failed") {
			t.Errorf("/readyz while full: %d\n%s", code, body)
		}
		err := write("while-full")
		var status apierrors.APIStatus
		if !errors.As(err, &status) || status.Status().Code != http.StatusInsufficientStorage ||
			!strings.Contains(err.Error(), "below the minimum of 256Mi (--min-free-disk)") {
			t.Errorf("write while full: %v; want 507 naming --min-free-disk", err)
		}
		out, err := s.kubectl(t, "create", "configmap", "while-full-kubectl")
		if err == nil || !strings.Contains(out, "writes are refused until space is freed") {
			t.Errorf("kubectl create while full: %v\n%s", err, out)
		}
		// Reads and deletes still work: an operator can clean up.
		if _, err := cms.Get(ctx, "before-full", metav1.GetOptions{}); err != nil {
			t.Errorf("read while full: %v", err)
		}
		out, err = runOut(bin("strata"), "image", "build", "--binary", bin("hello"), "-t", "localhost:5000/disk/full:v1", "--push")
		if err == nil || !strings.Contains(out, "--min-free-disk") {
			t.Errorf("registry push while full: %v\n%s", err, out)
		}
	})

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	t.Run("writes are taken again once space returns", func(t *testing.T) {
		waitFor(t, 15*time.Second, "the terminal to report space again", func(context.Context) (bool, error) {
			return strings.Contains(s.out.String(), "free again: writes are taken"), nil
		})
		if code, body := readyz(t); code != http.StatusOK {
			t.Errorf("/readyz after space returned: %d\n%s", code, body)
		}
		if err := write("after-full"); err != nil {
			t.Errorf("write after space returned: %v", err)
		}
		pushUnsignedImage(t, "hello", "localhost:5000/disk/after:v1")
	})

	t.Run("etcd is intact across a restart", func(t *testing.T) {
		if err := s.stop(); err != nil {
			t.Fatal(err)
		}
		if err := s.start(); err != nil {
			t.Fatalf("restart: %v", err)
		}
		etcd := etcdClient(t, s.dataDir)
		alarms, err := etcd.AlarmList(ctx)
		if err != nil || len(alarms.Alarms) > 0 {
			t.Fatalf("etcd alarms %v (%v)", alarms, err)
		}
		resp, err := etcd.HashKV(ctx, "https://127.0.0.1:2379", hashRev)
		switch {
		case err != nil:
			t.Fatalf("etcd HashKV(%d): %v", hashRev, err)
		case resp.CompactRevision != hashCompact:
			t.Logf("the API server compacted etcd in between; hash not comparable")
		case resp.Hash != hash:
			t.Fatalf("etcd's hash of revision %d changed: %x, was %x", hashRev, resp.Hash, hash)
		}
		cms := s.client.CoreV1().ConfigMaps("default")
		for _, name := range []string{"before-full", "after-full"} {
			if _, err := cms.Get(ctx, name, metav1.GetOptions{}); err != nil {
				t.Errorf("acknowledged write %s after the restart: %v", name, err)
			}
		}
		if _, err := cms.Get(ctx, "while-full", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("refused write while-full: %v, want not found", err)
		}
	})
}

package registry

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTar(t *testing.T, names ...string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "archive.tar")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, n := range names {
		h := &tar.Header{Name: n, Mode: 0o644, Typeflag: tar.TypeReg}
		if strings.HasSuffix(n, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return file
}

func TestBuildCheckpointImage(t *testing.T) {
	img, err := BuildCheckpointImage(writeTar(t, "config.dump", "spec.dump", "checkpoint/", "checkpoint/core-1.img"), "count")
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Annotations[CheckpointAnnotation] != "count" || len(m.Layers) != 1 || m.Config.MediaType != "application/vnd.oci.image.config.v1+json" {
		t.Fatalf("manifest %+v", m)
	}
	if cf, _ := img.ConfigFile(); cf.OS != "linux" || len(cf.RootFS.DiffIDs) != 1 {
		t.Fatalf("config %+v", cf)
	}

	notTar := filepath.Join(t.TempDir(), "x.tar")
	os.WriteFile(notTar, []byte("this is not a tar file, not at all, and long enough to fill a header block"), 0o644)
	for _, tc := range []struct{ archive, want string }{
		{"/nonexistent.tar", "no such file"},
		{notTar, "is not a tar file"},
		{writeTar(t, "config.dump", "rootfs-diff.tar"), "is not a kubelet checkpoint archive: it lacks spec.dump, checkpoint/"},
	} {
		if _, err := BuildCheckpointImage(tc.archive, "c"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.archive, err, tc.want)
		}
	}
}

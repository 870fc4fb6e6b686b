package node

import (
	"os"
	"path/filepath"
	"testing"
)

// On a plain directory tree os.Remove behaves as rmdir on cgroupfs: it
// refuses a directory with entries, which stands for a cgroup in use.
func TestRemovePodCgroups(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk("memory/kubepods/burstable/poda/c1")
	mk("cpu/kubepods/poda")
	mk("memory/kubepods/besteffort/podb")
	mk("memory/kubepods/besteffort/podother")
	mk("pids/kubepods/podbusy")
	if err := os.WriteFile(filepath.Join(root, "pids/kubepods/podbusy/tasks"), []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := RemovePodCgroups(root, map[string]bool{"a": true, "b": true, "busy": true})
	if err == nil {
		t.Error("a cgroup still in use should be reported")
	}
	for p, want := range map[string]bool{
		"memory/kubepods/burstable/poda":      false,
		"cpu/kubepods/poda":                   false,
		"memory/kubepods/besteffort/podb":     false,
		"memory/kubepods/besteffort/podother": true, // not one of ours
		"pids/kubepods/podbusy":               true, // in use
		"memory/kubepods/burstable":           true, // QoS level stays
	} {
		_, err := os.Stat(filepath.Join(root, p))
		if exists := err == nil; exists != want {
			t.Errorf("%s exists = %v, want %v", p, exists, want)
		}
	}
}

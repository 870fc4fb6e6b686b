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
	mk("kubepods/besteffort/podv2") // cgroup v2
	mk("memory/system.slice/podlike")
	mk("pids/kubepods/podbusy")
	if err := os.WriteFile(filepath.Join(root, "pids/kubepods/podbusy/tasks"), []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := RemovePodCgroups(root, ""); err == nil {
		t.Error("a cgroup still in use should be reported")
	}
	for p, want := range map[string]bool{
		"memory/kubepods/burstable/poda":  false,
		"cpu/kubepods/poda":               false,
		"memory/kubepods/besteffort/podb": false,
		"kubepods/besteffort/podv2":       false,
		"memory/system.slice/podlike":     true, // not the kubelet's
		"pids/kubepods/podbusy":           true, // in use
		"memory/kubepods/burstable":       true, // QoS level stays
	} {
		_, err := os.Stat(filepath.Join(root, p))
		if exists := err == nil; exists != want {
			t.Errorf("%s exists = %v, want %v", p, exists, want)
		}
	}
}

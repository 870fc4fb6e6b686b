package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestFindContainerd(t *testing.T) {
	proc := t.TempDir()
	for pid, cmdline := range map[string]string{
		"10":   "/usr/bin/containerd\x00",
		"11":   "/opt/bin/containerd\x00--config\x00/data/containerd/config.toml\x00",
		"12":   "containerd\x00--config=/data/containerd/config.toml\x00",
		"13":   "/usr/bin/containerd-shim-runc-v2\x00-namespace\x00k8s.io\x00",
		"14":   "/usr/bin/containerd\x00-c\x00/other.toml\x00",
		"self": "ignored\x00",
	} {
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, pid, "cmdline"), []byte(cmdline), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for config, want := range map[string][]int{
		"/etc/containerd/config.toml":  {10},
		"/data/containerd/config.toml": {11, 12},
		"/other.toml":                  {14},
		"/none.toml":                   nil,
	} {
		got, err := findContainerd(proc, config)
		slices.Sort(got)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: %v %v, want %v", config, got, err, want)
		}
	}
}

func TestWriteIfChanged(t *testing.T) {
	f := filepath.Join(t.TempDir(), "a", "b.toml")
	for i, tc := range []struct {
		data    string
		changed bool
	}{{"x", true}, {"x", false}, {"y", true}} {
		changed, err := writeIfChanged(f, []byte(tc.data), 0o644)
		if err != nil || changed != tc.changed {
			t.Errorf("write %d: changed %t %v, want %t", i, changed, err, tc.changed)
		}
	}
}

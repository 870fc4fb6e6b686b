package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The installer puts this shim on a node of someone else's cluster, as the
// Helm chart's DaemonSet runs it (like runwasi's node installers) on the
// nodes labelled strata.dev/wasm=true, the label RuntimeClass wasm selects:
//
//	install --host-root /host --bin-dir D --conf-dir C --containerd-config F
//
// copies this binary into D (on containerd's PATH), writes a drop-in into
// C (which containerd 2's config imports) adding the runtime handler
// "wasm", and restarts containerd if the drop-in changed (SIGTERM to the
// containerd that runs with config F; systemd or Strata's supervisor
// starts it again). It then waits; on SIGTERM it undoes all of it and
// removes the shims' module cache, so uninstalling the chart leaves the
// node as it was. It needs no API access: the node label is the user's.

const (
	runtimeHandler = "wasm"
	dropInName     = "strata-wasm.toml"
)

// dropIn is the containerd configuration the installer adds; the same
// runtime the Strata node configures itself (pkg/node.AddWasmRuntime).
const dropIn = `# Written by containerd-shim-strata-wasm-v1 install; removed when it stops.
version = 3
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.` + runtimeHandler + `]
  runtime_type = "io.containerd.strata-wasm.v1"
  pod_annotations = ["wasm.strata.dev/*"]
  container_annotations = ["io.kubernetes.container.terminationMessagePath"]
`

type installer struct {
	hostRoot, binDir, confDir, containerdConfig string
}

func install(args []string) int {
	var in installer
	fs := flag.NewFlagSet("install", flag.ContinueOnError)
	fs.StringVar(&in.hostRoot, "host-root", "/host", "where the node's root file system is mounted")
	fs.StringVar(&in.binDir, "bin-dir", "/usr/local/bin", "directory on containerd's PATH, on the node")
	fs.StringVar(&in.confDir, "conf-dir", "/etc/containerd/conf.d", "directory containerd's config imports (*.toml), on the node")
	fs.StringVar(&in.containerdConfig, "containerd-config", "/etc/containerd/config.toml", "config file of the containerd to restart, on the node")
	once := fs.Bool("once", false, "install and exit, without waiting to uninstall")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := in.apply(); err != nil {
		fmt.Fprintf(os.Stderr, "install: %v\n", err)
		return 1
	}
	fmt.Println("installed the wasm runtime handler \"wasm\" into this node's containerd")
	if *once {
		return 0
	}
	<-ctx.Done()
	if err := in.remove(); err != nil {
		fmt.Fprintf(os.Stderr, "uninstall: %v\n", err)
		return 1
	}
	fmt.Println("removed the wasm runtime from this node's containerd")
	return 0
}

func (in *installer) host(p string) string { return filepath.Join(in.hostRoot, p) }

// apply installs; it changes nothing that is already in place.
func (in *installer) apply() error {
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("read own binary: %w", err)
	}
	if _, err := writeIfChanged(in.host(filepath.Join(in.binDir, shimBinary)), self, 0o755); err != nil {
		return err
	}
	changedConf, err := writeIfChanged(in.host(filepath.Join(in.confDir, dropInName)), []byte(dropIn), 0o644)
	if err != nil {
		return err
	}
	// A new binary needs no restart (containerd runs it per pod); a new
	// runtime handler does.
	if changedConf {
		return in.restartContainerd()
	}
	return nil
}

// remove uninstalls: drop-in (and a containerd restart), binary, cache.
func (in *installer) remove() error {
	var err error
	conf := in.host(filepath.Join(in.confDir, dropInName))
	if rmErr := os.Remove(conf); rmErr == nil {
		err = in.restartContainerd()
	} else if !os.IsNotExist(rmErr) {
		err = rmErr
	}
	if rmErr := os.Remove(in.host(filepath.Join(in.binDir, shimBinary))); rmErr != nil && !os.IsNotExist(rmErr) {
		err = errors.Join(err, rmErr)
	}
	// Compiled modules of the shims that ran on this node.
	return errors.Join(err, os.RemoveAll(in.host(defaultCacheDir)))
}

const shimBinary = "containerd-shim-strata-wasm-v1"

func writeIfChanged(path string, data []byte, mode os.FileMode) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}

// restartContainerd stops the node's containerd (the one running with
// containerdConfig) and relies on its supervisor to start it again; the
// pod needs the host's PID namespace to see it. Running containers keep
// running: they belong to their shims.
func (in *installer) restartContainerd() error {
	// With hostPID the pod's own /proc lists the node's processes.
	pids, err := findContainerd("/proc", in.containerdConfig)
	if err != nil {
		return err
	}
	if len(pids) == 0 {
		return fmt.Errorf("no containerd running with config %s on this node (does the pod have hostPID, and is --containerd-config right?)", in.containerdConfig)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			return fmt.Errorf("stop containerd (pid %d): %w", pid, err)
		}
	}
	return nil
}

// findContainerd lists the containerd processes whose config is config:
// --config/-c F, or none given and config is containerd's default.
func findContainerd(proc, config string) ([]int, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(proc, e.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if filepath.Base(args[0]) != "containerd" {
			continue
		}
		got := "/etc/containerd/config.toml"
		for i, a := range args {
			if (a == "--config" || a == "-c") && i+1 < len(args) {
				got = args[i+1]
			} else if v, ok := strings.CutPrefix(a, "--config="); ok {
				got = v
			}
		}
		if got == config {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

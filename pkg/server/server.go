package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"time"

	"k8s.io/klog/v2"

	"github.com/strata-dev/strata/pkg/controlplane"
	"github.com/strata-dev/strata/pkg/diskspace"
	"github.com/strata-dev/strata/pkg/dra"
	"github.com/strata-dev/strata/pkg/layout"
	"github.com/strata-dev/strata/pkg/node"
	"github.com/strata-dev/strata/pkg/serverless"
	"github.com/strata-dev/strata/pkg/supervise"
)

// stopTimeout is the one graceful deadline for stopping every component.
const stopTimeout = 10 * time.Second

// Run starts every part of the server as a supervised component and blocks
// until ctx is done or a part fails; it then stops them in reverse order.
// ARCHITECTURE.md draws the component graph this builds.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	s := &server{cfg: cfg, nodeHost: nodeHost{layout: cfg.Layout(), start: time.Now(), out: cfg.Out}}
	lock, err := checkDataDir(s.layout)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := setupLogging(s.layout, cfg.Verbosity); err != nil {
		return err
	}
	defer klog.Flush()
	klog.InfoS("Go runtime", "gc", cfg.applyGC())
	faults, err := supervise.FaultsFromEnv(cfg.Faults)
	if err != nil {
		return err
	}
	// Everything that can be checked is checked before the first component
	// starts, so bad input never leaves anything running.
	if err := s.preflight(ctx); err != nil {
		return err
	}
	if err := s.cp.EnsurePKI(); err != nil {
		return fmt.Errorf("PKI: %w", err)
	}
	// The admin kubeconfig says "admission is enforced": a previous run's
	// copy must not say so before this run's webhooks serve.
	if err := os.Remove(s.layout.AdminKubeconfig()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the previous run's admin kubeconfig: %w", err)
	}

	g := &supervise.Group{StopTimeout: stopTimeout, Report: s.say, Faults: faults,
		OnReady:   func(name string) { klog.InfoS("Component ready", "component", name) },
		OnStopped: func(name string) { klog.InfoS("Component stopped", "component", name) },
	}
	ext, err := s.extensions()
	if err != nil {
		return err
	}
	if s.disk != nil {
		g.Add(supervise.Component{Name: compDiskSpace, Hint: "see " + s.layout.StrataLog(), Runnable: supervise.RunFunc(s.disk.Start)})
	}
	g.Add(s.controlPlane()...)
	g.Add(ext...)
	if !cfg.DisableAgent {
		g.Add(s.node()...)
	}
	go func() {
		<-ctx.Done()
		s.say("stopping")
	}()
	err = g.Run(ctx)
	if !cfg.DisableAgent {
		// Last: the kubelet's loops outlive its component and could
		// recreate a pod's cgroup until containerd is gone.
		if cerr := node.RemovePodCgroups(node.CgroupRoot, ""); cerr != nil {
			klog.ErrorS(cerr, "Remove pod cgroups")
		}
		if rerr := node.RemoveRunDir(s.layout.RunDir(), s.layout.CRISandboxesDir()); rerr != nil {
			klog.ErrorS(rerr, "Remove the run dir")
		}
	}
	s.say("stopped")
	return err
}

// server is what the components of one `strata server` share.
type server struct {
	cfg Config
	cp  *controlplane.Config
	// nodeHost is set by preflight (the node's parts).
	nodeHost

	// Set by components before they report ready; read only by the
	// components that require them.
	key        *systemKey
	serverless *serverless.Server
	// disk refuses writes while the data dir is low on space (nil: off).
	disk *diskspace.Guard
}

// nodeHost is what the node parts of a server and of an agent share.
type nodeHost struct {
	layout layout.Layout
	start  time.Time
	out    io.Writer

	network *node.Network
	nodeIP  net.IP
	bins    nodeBinaries
	gpus    []dra.GPU
}

// say prints a progress line for the person who started the process.
func (h *nodeHost) say(format string, args ...any) {
	fmt.Fprintf(h.out, "strata: [%5.1fs] %s\n", time.Since(h.start).Seconds(), fmt.Sprintf(format, args...))
}

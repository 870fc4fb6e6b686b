// Package diskspace watches the free space of the data dir's file system
// and, below a minimum, makes the server refuse the writes that would fill
// it: etcd stops (fatally) when a write to its log fails for lack of
// space, so the server stops taking writes while some space is left, says
// so on the terminal and in /readyz, and takes writes again once space is
// back.
package diskspace

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"
)

// Guard polls the file system of Dir.
type Guard struct {
	// Dir is on the file system watched.
	Dir string
	// MinFree is the free space (bytes) below which writes are refused;
	// they are taken again above MinFree plus a tenth, so a file system
	// that hovers at the line does not flap.
	MinFree int64
	// Interval between two looks (default 2 s).
	Interval time.Duration
	// Say reports a change on the terminal.
	Say func(format string, args ...any)

	// measure returns the free bytes of Dir's file system (statfs; tests
	// replace it).
	measure func(dir string) (int64, error)

	mu   sync.RWMutex
	low  bool
	free int64
}

// Name is the /readyz check's name.
func (g *Guard) Name() string { return "strata-disk-space" }

// Check fails while the file system is below its minimum (a
// healthz.HealthChecker, for the API server's /readyz).
func (g *Guard) Check(*http.Request) error { return g.Err() }

// Err says why writes are refused, or nil.
func (g *Guard) Err() error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if !g.low {
		return nil
	}
	return fmt.Errorf("the data dir %s has %s free, below the minimum of %s (--min-free-disk): writes are refused until space is freed",
		g.Dir, size(g.free), size(g.MinFree))
}

// Start polls until ctx ends (a supervised component's body); ready is
// called after the first look.
func (g *Guard) Start(ctx context.Context, ready func()) error {
	interval := g.Interval
	if interval == 0 {
		interval = 2 * time.Second
	}
	if err := g.look(); err != nil {
		return err
	}
	ready()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := g.look(); err != nil {
				// A transient statfs failure is not worth stopping the
				// server for; the last answer stands.
				klog.ErrorS(err, "Disk space check failed", "dir", g.Dir)
			}
		}
	}
}

// look measures once and reports a change.
func (g *Guard) look() error {
	measure := g.measure
	if measure == nil {
		measure = statfsFree
	}
	free, err := measure(g.Dir)
	if err != nil {
		return err
	}
	g.mu.Lock()
	was := g.low
	g.free = free
	switch {
	case !g.low && free < g.MinFree:
		g.low = true
	case g.low && free >= g.MinFree+g.MinFree/10:
		g.low = false
	}
	low := g.low
	g.mu.Unlock()
	if low == was {
		return nil
	}
	if low {
		klog.InfoS("Data dir low on space: refusing writes", "dir", g.Dir, "free", free, "minFree", g.MinFree)
		g.say("disk: %s has %s free, below --min-free-disk %s: the API server and the registry refuse writes until space is freed (reads and deletes still work)",
			g.Dir, size(free), size(g.MinFree))
	} else {
		klog.InfoS("Data dir has space again: taking writes", "dir", g.Dir, "free", free)
		g.say("disk: %s has %s free again: writes are taken", g.Dir, size(free))
	}
	return nil
}

// statfsFree is what an unprivileged user could still write: root's
// reserved blocks are not counted.
func statfsFree(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	return int64(st.Bavail) * st.Bsize, nil
}

func (g *Guard) say(format string, args ...any) {
	if g.Say != nil {
		g.Say(format, args...)
	}
}

func size(b int64) string { return resource.NewQuantity(b, resource.BinarySI).String() }

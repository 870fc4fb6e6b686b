package supervise

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Defaults of a Group's timings.
const (
	DefaultReadyTimeout = 2 * time.Minute
	DefaultStopTimeout  = 10 * time.Second
	firstBackoff        = time.Second
	maxBackoff          = 30 * time.Second
)

// Group starts components in dependency order and stops them in reverse.
// The zero value is ready to use; Add every component before Run.
type Group struct {
	// StopTimeout is the one graceful deadline for stopping every
	// component (DefaultStopTimeout when zero). Components still running
	// after it are named in the log and left to the process's exit.
	StopTimeout time.Duration
	// Report receives lines a person should see: a restart, a component
	// that failed or did not stop in time. Nil discards them.
	Report func(format string, args ...any)
	// OnReady is called once per component, when it first becomes ready;
	// OnStopped when a component has returned for good (for the log).
	OnReady   func(name string)
	OnStopped func(name string)
	// Faults makes the named components fail (as if Run had returned an
	// error) the given time after they are ready. Tests use it to prove
	// the failure policies on a real process; see FaultsFromEnv.
	Faults map[string]time.Duration

	components []Component
}

// Add registers components; their order breaks ties between components
// that could start at the same time.
func (g *Group) Add(cs ...Component) { g.components = append(g.components, cs...) }

// Names lists the registered components in start order.
func (g *Group) Names() ([]string, error) {
	order, err := g.order()
	if err != nil {
		return nil, err
	}
	names := make([]string, len(order))
	for i, c := range order {
		names[i] = c.Name
	}
	return names, nil
}

// order checks the graph and returns the components in a start order
// (Kahn's algorithm, stable in the order of Add).
func (g *Group) order() ([]Component, error) {
	index := map[string]int{}
	for i, c := range g.components {
		if c.Name == "" {
			return nil, fmt.Errorf("component %d has no name", i)
		}
		if c.Runnable == nil {
			return nil, fmt.Errorf("component %s has no Runnable", c.Name)
		}
		if _, dup := index[c.Name]; dup {
			return nil, fmt.Errorf("component %s is added twice", c.Name)
		}
		index[c.Name] = i
	}
	pending := make([]int, len(g.components))
	dependents := make([][]int, len(g.components))
	for i, c := range g.components {
		for _, r := range c.Requires {
			j, ok := index[r]
			if !ok {
				return nil, fmt.Errorf("component %s requires %s, which is not added", c.Name, r)
			}
			pending[i]++
			dependents[j] = append(dependents[j], i)
		}
	}
	var out []Component
	done := make([]bool, len(g.components))
	for len(out) < len(g.components) {
		progressed := false
		for i, c := range g.components {
			if done[i] || pending[i] > 0 {
				continue
			}
			done[i], progressed = true, true
			out = append(out, c)
			for _, d := range dependents[i] {
				pending[d]--
			}
		}
		if !progressed {
			var cycle []string
			for i, c := range g.components {
				if !done[i] {
					cycle = append(cycle, c.Name)
				}
			}
			return nil, fmt.Errorf("components require each other in a cycle: %s", strings.Join(cycle, ", "))
		}
	}
	return out, nil
}

// member is a component's run-time state.
type member struct {
	Component
	ctx    context.Context
	cancel context.CancelFunc
	ready  chan struct{}
	once   sync.Once
	done   chan struct{} // closed when the component will not run again
}

// failure is a component's unexpected end.
type failure struct {
	name string
	err  error
}

// Run starts every component and blocks until ctx ends or a Fatal component
// fails; it then stops them all and returns the failure, if any, naming the
// component.
func (g *Group) Run(ctx context.Context) error {
	order, err := g.order()
	if err != nil {
		return err
	}
	for name := range g.Faults {
		if !slices.ContainsFunc(order, func(c Component) bool { return c.Name == name }) {
			return fmt.Errorf("fault injected into %s, which is not a component", name)
		}
	}
	members := map[string]*member{}
	for _, c := range order {
		cctx, cancel := context.WithCancel(context.Background())
		members[c.Name] = &member{Component: c, ctx: cctx, cancel: cancel, ready: make(chan struct{}), done: make(chan struct{})}
	}
	stopping := make(chan struct{})
	failures := make(chan failure, len(order)*2)
	for _, c := range order {
		go g.run(members[c.Name], members, stopping, failures)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case f := <-failures:
		runErr = f.err
	}
	close(stopping)
	g.stop(order, members)
	return runErr
}

// run waits for a component's requirements, then runs it until it is
// stopped, restarting or reporting it when it ends on its own.
func (g *Group) run(m *member, members map[string]*member, stopping <-chan struct{}, failures chan<- failure) {
	defer func() {
		close(m.done)
		if g.OnStopped != nil {
			g.OnStopped(m.Name)
		}
	}()
	for _, r := range m.Requires {
		select {
		case <-members[r].ready:
		case <-stopping:
			return
		}
	}
	timeout := m.ReadyTimeout
	if timeout == 0 {
		timeout = DefaultReadyTimeout
	}
	go func() {
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-m.ready:
		case <-m.ctx.Done():
		case <-t.C:
			failures <- failure{m.Name, g.describe(m, fmt.Errorf("not ready after %s", timeout))}
		}
	}()
	ready := func() {
		m.once.Do(func() {
			close(m.ready)
			if g.OnReady != nil {
				g.OnReady(m.Name)
			}
		})
	}
	backoff := firstBackoff
	for {
		rctx, cancelFault := g.withFault(m)
		err := m.Runnable.Run(rctx, ready)
		injected := cancelFault()
		if m.ctx.Err() != nil {
			return
		}
		if injected != nil {
			err = injected
		}
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		if m.Policy != Restart {
			failures <- failure{m.Name, g.describe(m, err)}
			return
		}
		g.report("%s exited: %v; restarting in %s", m.Name, err, backoff)
		select {
		case <-m.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// stop cancels each component once every component that requires it has
// returned, so a part never loses what it depends on while it runs, and
// waits for all of them up to the one graceful deadline.
func (g *Group) stop(order []Component, members map[string]*member) {
	dependents := map[string][]*member{}
	for _, c := range order {
		for _, r := range c.Requires {
			dependents[r] = append(dependents[r], members[c.Name])
		}
	}
	for _, c := range order {
		m := members[c.Name]
		go func() {
			for _, d := range dependents[m.Name] {
				<-d.done
			}
			m.cancel()
		}()
	}
	timeout := g.StopTimeout
	if timeout == 0 {
		timeout = DefaultStopTimeout
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, c := range order {
		select {
		case <-members[c.Name].done:
		case <-deadline.C:
			var left []string
			for _, c := range order {
				select {
				case <-members[c.Name].done:
				default:
					left = append(left, c.Name)
				}
			}
			sort.Strings(left)
			g.report("did not stop within %s: %s", timeout, strings.Join(left, ", "))
			// Whatever still waits on a hung dependent gets its own
			// chance to close (etcd flushing its WAL) as the process exits.
			for _, m := range members {
				m.cancel()
			}
			return
		}
	}
}

func (g *Group) describe(m *member, err error) error {
	if m.Hint != "" {
		return fmt.Errorf("%s: %w; %s", m.Name, err, m.Hint)
	}
	return fmt.Errorf("%s: %w", m.Name, err)
}

func (g *Group) report(format string, args ...any) {
	if g.Report != nil {
		g.Report(format, args...)
	}
}

// Package supervise runs the long-running parts of a Strata process as one
// group. A component has a name, declares the components it needs, runs
// until its context ends and says when it is ready; the group starts
// components once what they need is ready, treats an unexpected return as
// fatal (or restarts the component, where that is its policy) and stops
// them in reverse dependency order under one graceful deadline.
//
// The shape follows controller-runtime's Runnable (one blocking call per
// part) and containerd's plugin registrations (each declares what it
// Requires), with k3s-style readiness signals in between.
package supervise

import (
	"context"
	"time"
)

// Runnable is the body of a component. Run blocks until ctx ends or the
// component fails, and calls ready once it serves; a component that never
// calls ready holds back everything that requires it. Returning before ctx
// ends, with or without an error, is a failure.
type Runnable interface {
	Run(ctx context.Context, ready func()) error
}

// RunFunc adapts a function to Runnable.
type RunFunc func(ctx context.Context, ready func()) error

// Run calls f.
func (f RunFunc) Run(ctx context.Context, ready func()) error { return f(ctx, ready) }

// Policy says what the group does when a component returns unexpectedly.
type Policy int

const (
	// Fatal stops the whole group and makes Run return the component's
	// error: a server with a dead part must not look alive.
	Fatal Policy = iota
	// Restart runs the component again after a back-off and reports it;
	// for parts that can fail and come back without losing state (a
	// child process such as containerd).
	Restart
)

// Component is one supervised part.
type Component struct {
	// Name identifies the component in Requires, logs and errors.
	Name string
	// Requires names the components that must be ready before this one
	// starts, and that stop only after this one has returned.
	Requires []string
	// Runnable is the component's body.
	Runnable Runnable
	// ReadyTimeout bounds the time from start to ready (DefaultReadyTimeout
	// when zero).
	ReadyTimeout time.Duration
	// Policy is Fatal unless set.
	Policy Policy
	// Hint is added to errors about this component: where to look (a log
	// file) or what to do.
	Hint string
}

// Task wraps a one-shot step (install CRDs, publish a file) as a component:
// it runs once, is ready when it succeeds, and then holds until the group
// stops. A failed step is fatal.
func Task(name string, requires []string, step func(ctx context.Context) error) Component {
	return Component{Name: name, Requires: requires, Runnable: RunFunc(func(ctx context.Context, ready func()) error {
		if err := step(ctx); err != nil {
			return err
		}
		ready()
		<-ctx.Done()
		return nil
	})}
}

package supervise

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder logs what components do, in order.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func (r *recorder) index(event string) int {
	for i, e := range r.list() {
		if e == event {
			return i
		}
	}
	return -1
}

// server is a component that is ready at once and stops when asked.
func server(r *recorder, name string, requires ...string) Component {
	return Component{Name: name, Requires: requires, Runnable: RunFunc(func(ctx context.Context, ready func()) error {
		r.add("start %s", name)
		ready()
		<-ctx.Done()
		r.add("stop %s", name)
		return nil
	})}
}

func TestOrderValidation(t *testing.T) {
	noop := RunFunc(func(ctx context.Context, ready func()) error { return nil })
	for _, tc := range []struct {
		name       string
		components []Component
		want       string // error substring, or the start order
	}{
		{"dependency order, ties by Add", []Component{
			{Name: "apiserver", Requires: []string{"etcd"}, Runnable: noop},
			{Name: "etcd", Runnable: noop},
			{Name: "registry", Runnable: noop},
			{Name: "kubelet", Requires: []string{"apiserver", "registry"}, Runnable: noop},
		}, "etcd,registry,apiserver,kubelet"},
		{"unknown requirement", []Component{{Name: "a", Requires: []string{"b"}, Runnable: noop}}, "a requires b, which is not added"},
		{"cycle", []Component{
			{Name: "a", Requires: []string{"b"}, Runnable: noop},
			{Name: "b", Requires: []string{"a"}, Runnable: noop},
			{Name: "c", Runnable: noop},
		}, "cycle: a, b"},
		{"duplicate", []Component{{Name: "a", Runnable: noop}, {Name: "a", Runnable: noop}}, "a is added twice"},
		{"no runnable", []Component{{Name: "a"}}, "a has no Runnable"},
		{"no name", []Component{{Runnable: noop}}, "has no name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &Group{}
			g.Add(tc.components...)
			names, err := g.Names()
			got := strings.Join(names, ",")
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStartsInOrderAndStopsInReverse(t *testing.T) {
	r := &recorder{}
	g := &Group{}
	g.Add(server(r, "apiserver", "etcd"), server(r, "etcd"), server(r, "scheduler", "apiserver"), server(r, "registry"))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- g.Run(ctx) }()
	waitEvent(t, r, "start scheduler")
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	before := func(a, b string) {
		t.Helper()
		if ia, ib := r.index(a), r.index(b); ia < 0 || ib < 0 || ia > ib {
			t.Errorf("%q should come before %q: %v", a, b, r.list())
		}
	}
	before("start etcd", "start apiserver")
	before("start apiserver", "start scheduler")
	before("stop scheduler", "stop apiserver")
	before("stop apiserver", "stop etcd")
	if r.index("stop registry") < 0 {
		t.Errorf("registry was not stopped: %v", r.list())
	}
}

func TestFatalFailureStopsEverything(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failure error
		want    string
	}{
		{"error", errors.New("listener closed"), "dns: listener closed; see dns.log"},
		{"nil return", nil, "dns: stopped unexpectedly; see dns.log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			fail := make(chan struct{})
			g := &Group{}
			g.Add(server(r, "apiserver"), Component{Name: "dns", Requires: []string{"apiserver"}, Hint: "see dns.log",
				Runnable: RunFunc(func(ctx context.Context, ready func()) error {
					ready()
					<-fail
					return tc.failure
				})})
			errc := make(chan error, 1)
			go func() { errc <- g.Run(context.Background()) }()
			waitEvent(t, r, "start apiserver")
			close(fail)
			select {
			case err := <-errc:
				if err == nil || err.Error() != tc.want {
					t.Fatalf("Run = %v, want %q", err, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return after a fatal failure")
			}
			if r.index("stop apiserver") < 0 {
				t.Fatalf("apiserver was not stopped: %v", r.list())
			}
		})
	}
}

func TestRestartPolicy(t *testing.T) {
	r := &recorder{}
	runs := 0
	var reports []string
	var mu sync.Mutex
	g := &Group{Report: func(format string, args ...any) {
		mu.Lock()
		reports = append(reports, fmt.Sprintf(format, args...))
		mu.Unlock()
	}}
	g.Add(Component{Name: "containerd", Policy: Restart, Runnable: RunFunc(func(ctx context.Context, ready func()) error {
		runs++
		r.add("run %d", runs)
		ready()
		if runs == 1 {
			return errors.New("signal: killed")
		}
		<-ctx.Done()
		return nil
	})}, server(r, "kubelet", "containerd"))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- g.Run(ctx) }()
	waitEvent(t, r, "run 2")
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run after a restart: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != 1 || !strings.Contains(reports[0], "containerd exited: signal: killed; restarting in 1s") {
		t.Fatalf("reports = %q", reports)
	}
	if r.index("start kubelet") < 0 || r.index("stop kubelet") < 0 {
		t.Fatalf("kubelet should keep running across the restart: %v", r.list())
	}
}

func TestReadyTimeout(t *testing.T) {
	r := &recorder{}
	g := &Group{}
	g.Add(Component{Name: "apiserver", ReadyTimeout: 50 * time.Millisecond, Hint: "see strata.log",
		Runnable: RunFunc(func(ctx context.Context, ready func()) error { <-ctx.Done(); return nil })},
		server(r, "scheduler", "apiserver"))
	err := g.Run(context.Background())
	if err == nil || err.Error() != "apiserver: not ready after 50ms; see strata.log" {
		t.Fatalf("Run = %v", err)
	}
	if len(r.list()) != 0 {
		t.Fatalf("scheduler must not start before apiserver is ready: %v", r.list())
	}
}

func TestStopDeadline(t *testing.T) {
	var reports []string
	g := &Group{StopTimeout: 100 * time.Millisecond, Report: func(format string, args ...any) {
		reports = append(reports, fmt.Sprintf(format, args...))
	}}
	release := make(chan struct{})
	defer close(release)
	g.Add(Component{Name: "stubborn", Runnable: RunFunc(func(ctx context.Context, ready func()) error {
		ready()
		<-release // ignores ctx, as some upstream loops do
		return nil
	})})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	start := time.Now()
	if err := g.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("stop took %s despite a 100ms deadline", took)
	}
	if len(reports) != 1 || reports[0] != "did not stop within 100ms: stubborn" {
		t.Fatalf("reports = %q", reports)
	}
}

func TestInjectedFault(t *testing.T) {
	r := &recorder{}
	g := &Group{Faults: map[string]time.Duration{"dns": 10 * time.Millisecond}}
	g.Add(server(r, "dns"))
	err := g.Run(context.Background())
	if err == nil || err.Error() != "dns: injected fault (10ms after ready)" {
		t.Fatalf("Run = %v", err)
	}
	g = &Group{Faults: map[string]time.Duration{"nope": 0}}
	g.Add(server(r, "dns"))
	if err := g.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "nope, which is not a component") {
		t.Fatalf("unknown fault target: %v", err)
	}
}

func TestTask(t *testing.T) {
	r := &recorder{}
	g := &Group{}
	g.Add(Task("crds", nil, func(context.Context) error { r.add("installed"); return nil }), server(r, "controllers", "crds"))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- g.Run(ctx) }()
	waitEvent(t, r, "start controllers")
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	g = &Group{}
	g.Add(Task("crds", nil, func(context.Context) error { return errors.New("CRD not established") }), server(r, "later", "crds"))
	if err := g.Run(context.Background()); err == nil || err.Error() != "crds: CRD not established" {
		t.Fatalf("failed task: %v", err)
	}
}

func TestFaultsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]time.Duration
		err  string
	}{
		{"", nil, ""},
		{"cluster-dns@3s", map[string]time.Duration{"cluster-dns": 3 * time.Second}, ""},
		{"a@1s, b@0s", map[string]time.Duration{"a": time.Second, "b": 0}, ""},
		{"dns", nil, `"dns" is not component@delay`},
		{"dns@soon", nil, `"dns@soon" is not component@delay`},
		{"@1s", nil, `"@1s" is not component@delay`},
	} {
		got, err := FaultsFromEnv(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%q = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func waitEvent(t *testing.T, r *recorder, event string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.index(event) < 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within 5s: %v", event, r.list())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

package serverless

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// tickInterval is how often the autoscaler decides (Knative's 2 s).
const tickInterval = 2 * time.Second

// scaler applies the autoscaler's decisions to the functions' Deployments.
type scaler struct {
	client  client.Client
	gateway *Gateway

	mu     sync.Mutex
	waking map[types.NamespacedName]bool
}

func (s *scaler) run(ctx context.Context) {
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.gateway.each(func(st *fnState) { s.tick(ctx, now, st) })
		}
	}
}

func (s *scaler) tick(ctx context.Context, now time.Time, st *fnState) {
	st.mu.Lock()
	pol := st.auto.Policy
	current, ready := st.desired, st.ready
	st.mu.Unlock()
	pol.defaults()
	obs := st.conc.observe(now, pol.StableWindow, pol.PanicWindow)
	st.mu.Lock()
	d := st.auto.Decide(now, obs, current, ready)
	st.mu.Unlock()
	if d.Desired != current {
		s.scale(ctx, st, d.Desired, fmt.Sprintf("stable %.2f, panic %.2f in flight (panic mode %v)", obs.StableConcurrency, obs.PanicConcurrency, d.Panic))
	}
}

// wake scales a function at zero to one replica at once, for a request
// that is waiting.
func (s *scaler) wake(key types.NamespacedName) {
	st := s.gateway.get(key)
	if st == nil {
		return
	}
	st.mu.Lock()
	current := st.desired
	st.mu.Unlock()
	if current > 0 {
		return
	}
	s.mu.Lock()
	if s.waking[key] {
		s.mu.Unlock()
		return
	}
	s.waking[key] = true
	s.mu.Unlock()
	go func() {
		defer func() { s.mu.Lock(); delete(s.waking, key); s.mu.Unlock() }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.scale(ctx, st, 1, "request waiting at zero replicas")
	}()
}

func (s *scaler) scale(ctx context.Context, st *fnState, n int32, why string) {
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: st.key.Namespace, Name: st.key.Name}}
	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, n))
	if err := s.client.Patch(ctx, dep, patch); err != nil {
		klog.ErrorS(err, "Cannot scale function", "function", st.key, "replicas", n)
		return
	}
	st.mu.Lock()
	old := st.desired
	st.desired = n
	st.mu.Unlock()
	dir := "up"
	if n < old {
		dir = "down"
	}
	s.gateway.metrics.scaleDecisions.WithLabelValues(st.key.Namespace, st.key.Name, dir).Inc()
	s.gateway.metrics.desired.WithLabelValues(st.key.Namespace, st.key.Name).Set(float64(n))
	klog.InfoS("Scaled function", "function", st.key, "from", old, "to", n, "why", why)
}

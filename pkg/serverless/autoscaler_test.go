package serverless

import (
	"testing"
	"time"
)

func TestAutoscalerDecide(t *testing.T) {
	t0 := time.Unix(1000, 0)
	pol := ScalePolicy{Min: 0, Max: 10, Target: 10, StableWindow: 60 * time.Second, Grace: 30 * time.Second}
	tests := []struct {
		name           string
		policy         ScalePolicy
		obs            Observation
		current, ready int32
		want           int32
		wantPanic      bool
	}{
		{name: "idle at zero stays at zero", policy: pol, want: 0},
		{name: "waiting request wakes from zero", policy: pol, obs: Observation{Waiting: true}, want: 1},
		{name: "in-flight request keeps one", policy: pol, obs: Observation{InFlight: 1, StableConcurrency: 0.2}, current: 1, ready: 1, want: 1},
		{name: "stable demand divided by target", policy: pol, obs: Observation{StableConcurrency: 35, PanicConcurrency: 35, InFlight: 35}, current: 4, ready: 4, want: 4},
		{name: "burst enters panic", policy: pol, obs: Observation{StableConcurrency: 12, PanicConcurrency: 80, InFlight: 80}, current: 2, ready: 2, want: 8, wantPanic: true},
		{name: "bounded by max", policy: pol, obs: Observation{StableConcurrency: 500, PanicConcurrency: 500}, current: 10, ready: 10, want: 10, wantPanic: true},
		{name: "bounded by min", policy: ScalePolicy{Min: 2, Max: 5, Target: 10}, want: 2},
		{name: "scale down at most halves", policy: pol, obs: Observation{StableConcurrency: 5, PanicConcurrency: 5, InFlight: 3, LastRequest: t0}, current: 8, ready: 8, want: 4},
		{name: "no demand within grace keeps one", policy: pol, obs: Observation{LastRequest: t0.Add(-10 * time.Second)}, current: 1, ready: 1, want: 1},
		{name: "grace counts from the first idle observation", policy: pol, obs: Observation{LastRequest: t0.Add(-31 * time.Second)}, current: 1, ready: 1, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Autoscaler{Policy: tt.policy}
			got := a.Decide(t0, tt.obs, tt.current, tt.ready)
			if got.Desired != tt.want || got.Panic != tt.wantPanic {
				t.Fatalf("Decide = %+v, want desired %d panic %v", got, tt.want, tt.wantPanic)
			}
		})
	}
}

// The grace period counts from when demand became zero, not from the
// first call: a function idle for longer than the grace scales to zero on
// the call after the grace has passed.
func TestAutoscalerGraceThenZero(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := &Autoscaler{Policy: ScalePolicy{Max: 10, Target: 10, Grace: 30 * time.Second}}
	last := t0
	if d := a.Decide(t0, Observation{LastRequest: last}, 1, 1); d.Desired != 1 {
		t.Fatalf("at t0: %d, want 1", d.Desired)
	}
	if d := a.Decide(t0.Add(29*time.Second), Observation{LastRequest: last}, 1, 1); d.Desired != 1 {
		t.Fatalf("within grace: %d, want 1", d.Desired)
	}
	if d := a.Decide(t0.Add(31*time.Second), Observation{LastRequest: last}, 1, 1); d.Desired != 0 {
		t.Fatalf("after grace: %d, want 0", d.Desired)
	}
}

// Panic mode holds the scale for a stable window even when the burst
// ends, so a burst is not followed by an immediate scale-down.
func TestAutoscalerPanicHolds(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := &Autoscaler{Policy: ScalePolicy{Max: 20, Target: 1, StableWindow: 60 * time.Second}}
	if d := a.Decide(t0, Observation{StableConcurrency: 2, PanicConcurrency: 10, InFlight: 10}, 2, 2); d.Desired != 10 || !d.Panic {
		t.Fatalf("burst: %+v, want 10 in panic", d)
	}
	if d := a.Decide(t0.Add(30*time.Second), Observation{StableConcurrency: 1, PanicConcurrency: 1, InFlight: 1, LastRequest: t0}, 10, 10); d.Desired != 10 || !d.Panic {
		t.Fatalf("within panic: %+v, want 10 held", d)
	}
	if d := a.Decide(t0.Add(61*time.Second), Observation{StableConcurrency: 1, PanicConcurrency: 1, InFlight: 1, LastRequest: t0}, 10, 10); d.Desired != 5 || d.Panic {
		t.Fatalf("after panic: %+v, want 5 (halved)", d)
	}
}

package serverless

import (
	"math"
	"testing"
	"time"
)

func TestConcurrencyAverages(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := newConcurrency(t0, 60)
	// Two requests for the whole of the first 2 s, one more for half of
	// the third second.
	c.add(t0, 2)
	c.add(t0.Add(2*time.Second), 1)
	c.add(t0.Add(2500*time.Millisecond), -3)
	obs := c.observe(t0.Add(3*time.Second), 60*time.Second, 3*time.Second)
	// Buckets: 2, 2, then 3 for half a second = 1.5: 5.5 over 3 s.
	if want := 5.5 / 3; math.Abs(obs.PanicConcurrency-want) > 1e-9 {
		t.Errorf("panic-window average %v, want %v", obs.PanicConcurrency, want)
	}
	if want := 5.5 / 60; math.Abs(obs.StableConcurrency-want) > 1e-9 {
		t.Errorf("stable-window average %v, want %v", obs.StableConcurrency, want)
	}
	if obs.InFlight != 0 || !obs.LastRequest.Equal(t0.Add(2500*time.Millisecond)) {
		t.Errorf("observation %+v", obs)
	}
	// After a long idle period the history is dropped, not replayed.
	obs = c.observe(t0.Add(10*time.Minute), 60*time.Second, 6*time.Second)
	if obs.StableConcurrency != 0 || obs.PanicConcurrency != 0 {
		t.Errorf("after idle: %+v", obs)
	}
}

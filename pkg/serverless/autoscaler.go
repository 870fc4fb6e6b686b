package serverless

import (
	"math"
	"time"
)

// ScalePolicy is one function's autoscaling settings, Knative's KPA
// model: concurrency averaged over a stable window decides, a short panic
// window reacts to bursts, and a function without traffic keeps its last
// replica for a grace period before going to zero.
type ScalePolicy struct {
	Min, Max int32
	// Target is the requests in flight per replica aimed for.
	Target float64
	// StableWindow is the averaging window (default 60 s); PanicWindow is
	// the burst window (default StableWindow/10).
	StableWindow, PanicWindow time.Duration
	// PanicThreshold is the ratio of panic-window demand to ready replicas
	// that enters panic mode (default 2: twice the capacity).
	PanicThreshold float64
	// Grace is how long a function at zero demand keeps one replica.
	Grace time.Duration
	// MaxScaleDownRate bounds each step down (default 2: at most halve).
	MaxScaleDownRate float64
}

func (p *ScalePolicy) defaults() {
	if p.StableWindow <= 0 {
		p.StableWindow = 60 * time.Second
	}
	if p.PanicWindow <= 0 {
		p.PanicWindow = p.StableWindow / 10
	}
	if p.PanicThreshold <= 0 {
		p.PanicThreshold = 2
	}
	if p.Target <= 0 {
		p.Target = 1
	}
	if p.MaxScaleDownRate < 1 {
		p.MaxScaleDownRate = 2
	}
	if p.Max <= 0 {
		p.Max = math.MaxInt32
	}
}

// Observation is what the gateway saw of a function.
type Observation struct {
	// StableConcurrency and PanicConcurrency are the average requests in
	// flight over the two windows.
	StableConcurrency, PanicConcurrency float64
	// LastRequest is when a request last arrived or finished; zero if
	// never.
	LastRequest time.Time
	// InFlight is the requests in flight now.
	InFlight int
	// Waiting is true when requests wait for a first replica.
	Waiting bool
}

// Autoscaler decides one function's replica count. It keeps the panic
// state between calls, so each function has its own.
type Autoscaler struct {
	Policy ScalePolicy
	// panicUntil is when panic mode ends unless renewed.
	panicUntil time.Time
	// zeroSince is when the demand first fell to zero.
	zeroSince time.Time
}

// Decision is the autoscaler's answer.
type Decision struct {
	Desired int32
	Panic   bool
}

// Decide returns the replicas wanted now, given the current desired and
// ready replica counts.
func (a *Autoscaler) Decide(now time.Time, obs Observation, current, ready int32) Decision {
	p := a.Policy
	p.defaults()
	stable := int32(math.Ceil(obs.StableConcurrency / p.Target))
	burst := int32(math.Ceil(obs.PanicConcurrency / p.Target))
	if obs.InFlight > 0 || obs.Waiting {
		// Requests now need a replica, whatever the averages say.
		stable = max(stable, 1)
		burst = max(burst, 1)
	}

	capacity := max(ready, 1)
	if float64(burst)/float64(capacity) >= p.PanicThreshold && burst > ready {
		a.panicUntil = now.Add(p.StableWindow)
	}
	panicking := now.Before(a.panicUntil)

	desired := stable
	if panicking {
		// In panic the scale only grows: a burst is not averaged away.
		desired = max(burst, stable, current)
	} else if current > 1 {
		// The last replica goes by the grace rule below, not by the rate.
		desired = max(desired, int32(math.Ceil(float64(current)/p.MaxScaleDownRate)))
	}

	// Scale to zero only after the demand has been zero for the grace
	// period; until then keep one replica.
	if desired == 0 {
		if a.zeroSince.IsZero() {
			a.zeroSince = now
		}
		idleSince := a.zeroSince
		if obs.LastRequest.After(idleSince) {
			idleSince = obs.LastRequest
		}
		if current > 0 && now.Sub(idleSince) < p.Grace {
			desired = 1
		}
	} else {
		a.zeroSince = time.Time{}
	}
	desired = max(desired, p.Min)
	desired = min(desired, p.Max)
	return Decision{Desired: desired, Panic: panicking}
}

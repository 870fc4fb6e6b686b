package serverless

import (
	"sync"
	"time"
)

// concurrency measures a function's requests in flight as a time-weighted
// average per one-second bucket, the signal Knative's autoscaler uses: a
// request that lasts 200 ms counts as 0.2 of a replica's worth of work in
// its second, however bursty the arrivals.
type concurrency struct {
	mu       sync.Mutex
	inFlight int
	waiting  int
	last     time.Time // when inFlight last changed or a bucket closed
	area     float64   // in-flight x seconds accumulated in the open bucket
	bucketAt time.Time // start of the open bucket
	buckets  []float64 // closed buckets, newest last; bounded by keep
	keep     int
	lastReq  time.Time
}

func newConcurrency(now time.Time, keep int) *concurrency {
	return &concurrency{last: now, bucketAt: now.Truncate(time.Second), keep: keep}
}

// advance closes every bucket that ended before now.
func (c *concurrency) advance(now time.Time) {
	for {
		end := c.bucketAt.Add(time.Second)
		if now.Before(end) {
			break
		}
		c.area += float64(c.inFlight) * end.Sub(c.last).Seconds()
		c.buckets = append(c.buckets, c.area)
		if len(c.buckets) > c.keep {
			c.buckets = c.buckets[len(c.buckets)-c.keep:]
		}
		c.area, c.last, c.bucketAt = 0, end, end
		if c.inFlight == 0 && now.Sub(end) > time.Duration(c.keep)*time.Second {
			// Idle for longer than we keep: skip the empty seconds.
			c.buckets = c.buckets[:0]
			c.last = now
			c.bucketAt = now.Truncate(time.Second)
			break
		}
	}
	c.area += float64(c.inFlight) * now.Sub(c.last).Seconds()
	c.last = now
}

func (c *concurrency) add(now time.Time, d int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance(now)
	c.inFlight += d
	c.lastReq = now
}

func (c *concurrency) wait(d int) {
	c.mu.Lock()
	c.waiting += d
	c.mu.Unlock()
}

// observe returns the averages over the two windows (in whole seconds,
// closed buckets only, so a half-open second does not bias them).
func (c *concurrency) observe(now time.Time, stable, panicW time.Duration) Observation {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance(now)
	avg := func(w time.Duration) float64 {
		n := int(w / time.Second)
		if n < 1 {
			n = 1
		}
		if n > len(c.buckets) {
			// Seconds before the first request count as idle.
			n = min(n, c.keep)
		}
		sum := 0.0
		for i := len(c.buckets) - 1; i >= 0 && i >= len(c.buckets)-n; i-- {
			sum += c.buckets[i]
		}
		return sum / float64(n)
	}
	return Observation{
		StableConcurrency: avg(stable),
		PanicConcurrency:  avg(panicW),
		LastRequest:       c.lastReq,
		InFlight:          c.inFlight,
		Waiting:           c.waiting > 0,
	}
}

func (c *concurrency) current() (inFlight, waiting int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inFlight, c.waiting
}

package server

import (
	"fmt"
	"runtime/debug"

	"k8s.io/apimachinery/pkg/api/resource"
)

// DefaultGCPercent is the server's Go GC target (GOGC) unless the user
// chooses one. The whole control plane shares one heap, and under load
// (bench/gputrace --mode server) Go's default of 100 spent a large share
// of the server's CPU on garbage collection; 200 costs less CPU per pod,
// for more memory at start-up and at the replay's peak (see
// bench/RESULTS.md, Decisions).
const DefaultGCPercent = 200

// validateGC checks --gc-percent and --memory-limit.
func (c *Config) validateGC() error {
	if c.GCPercent < 0 {
		return fmt.Errorf("--gc-percent %d is negative: use a percentage such as %d, or 0 to keep GOGC from the environment", c.GCPercent, DefaultGCPercent)
	}
	if c.MemoryLimit == "" {
		return nil
	}
	q, err := resource.ParseQuantity(c.MemoryLimit)
	if err != nil || q.Sign() <= 0 {
		return fmt.Errorf("--memory-limit %q is not a positive size: use e.g. 512Mi or 2Gi, or leave it empty for no limit", c.MemoryLimit)
	}
	return nil
}

// applyGC sets the process's GC target and soft memory limit; it returns
// what it set, for the log. Left at zero values, GOGC and GOMEMLIMIT
// from the environment (which the Go runtime has already read) stay.
func (c *Config) applyGC() string {
	msg := "GOGC and GOMEMLIMIT from the environment"
	if c.GCPercent > 0 {
		debug.SetGCPercent(c.GCPercent)
		msg = fmt.Sprintf("GC target %d%%", c.GCPercent)
	}
	if c.MemoryLimit != "" {
		q := resource.MustParse(c.MemoryLimit) // validated
		debug.SetMemoryLimit(q.Value())
		msg += ", soft memory limit " + c.MemoryLimit
	}
	return msg
}

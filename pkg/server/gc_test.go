package server

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestApplyGC(t *testing.T) {
	gc0, limit0 := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	defer func() { debug.SetGCPercent(gc0); debug.SetMemoryLimit(limit0) }()

	for _, tc := range []struct {
		name      string
		c         Config
		wantGC    int
		wantLimit int64
		wantMsg   string
	}{
		{"defaults", Config{GCPercent: DefaultGCPercent}, DefaultGCPercent, math.MaxInt64, "GC target 200%"},
		{"environment kept", Config{}, 100, math.MaxInt64, "GOGC and GOMEMLIMIT from the environment"},
		{"limit", Config{GCPercent: 150, MemoryLimit: "1536Mi"}, 150, 1536 << 20, "GC target 150%, soft memory limit 1536Mi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
			if msg := tc.c.applyGC(); msg != tc.wantMsg {
				t.Errorf("applyGC() = %q, want %q", msg, tc.wantMsg)
			}
			if gc := debug.SetGCPercent(100); gc != tc.wantGC {
				t.Errorf("GC percent %d, want %d", gc, tc.wantGC)
			}
			if limit := debug.SetMemoryLimit(-1); limit != tc.wantLimit {
				t.Errorf("memory limit %d, want %d", limit, tc.wantLimit)
			}
		})
	}
}

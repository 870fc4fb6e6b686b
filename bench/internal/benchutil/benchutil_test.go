package benchutil

import (
	"os"
	"testing"
	"time"
)

func TestProcessCPU(t *testing.T) {
	before, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn some CPU: the reading must grow.
	for start := time.Now(); time.Since(start) < 200*time.Millisecond; {
	}
	after, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Errorf("CPU time did not grow: %v then %v", before, after)
	}
	if _, err := ProcessCPU(-1); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

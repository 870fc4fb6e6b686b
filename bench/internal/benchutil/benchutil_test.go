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

func TestParseMachineCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    MachineCPU
		wantErr bool
	}{
		{"kernel 2.6.33+", "cpu  100 5 20 300 7 1 2 10 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n",
			MachineCPU{Busy: 1280 * time.Millisecond, Steal: 100 * time.Millisecond, Total: 4450 * time.Millisecond}, false},
		{"no steal column", "cpu  100 5 20 300 7 1 2\n", MachineCPU{}, true},
		{"not the cpu line", "intr 1 2 3 4 5 6 7 8 9\n", MachineCPU{}, true},
		{"not a number", "cpu  100 x 20 300 7 1 2 10\n", MachineCPU{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMachineCPU(tt.stat)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %+v, %v; want %+v (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
	before, err := ReadMachineCPU()
	if err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); time.Since(start) < 100*time.Millisecond; {
	}
	after, err := ReadMachineCPU()
	if err != nil {
		t.Fatal(err)
	}
	if d := after.Sub(before); d.Busy <= 0 || d.Total < d.Busy+d.Steal {
		t.Errorf("machine CPU over a busy loop: %+v", d)
	}
}

func TestDescribeMachine(t *testing.T) {
	cpuinfo := "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\n"
	tests := []struct {
		name, cpuinfo, meminfo, want string
	}{
		{"two CPUs", cpuinfo, "MemTotal:       24572236 kB\nMemFree: 1 kB\n", "Intel(R) Xeon(R) Processor, 2 CPUs, 23.4 GiB"},
		{"unreadable", "", "", "unknown CPU, 0 CPUs, unknown memory"},
	}
	for _, tt := range tests {
		if got := describeMachine(tt.cpuinfo, tt.meminfo); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

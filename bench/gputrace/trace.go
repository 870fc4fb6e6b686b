package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/strata-dev/strata/pkg/gpu"
	"github.com/strata-dev/strata/pkg/gpushare"
)

// TraceNode is one row of openb_node_list_gpu_node.csv.
type TraceNode struct {
	Name   string
	CPU    int64 // milli
	MemMiB int64
	GPUs   int
	Model  string
}

// TracePod is one row of openb_pod_list_*.csv, as a task.
type TracePod struct {
	Name string
	Task gpushare.Task // Mem in MiB
}

var nodeColumns = []string{"sn", "cpu_milli", "memory_mib", "gpu", "model"}
var podColumns = []string{"name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec", "qos", "pod_phase", "creation_time", "deletion_time", "scheduled_time"}

// csvRows reads a simple CSV (no quoting: the trace has none) and calls row
// with the 1-based line number and the fields by column name. The header
// must name only known columns and all required ones.
func csvRows(r io.Reader, file string, known []string, required []string, row func(line int, f map[string]string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	var header []string
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if header == nil {
			header = strings.Split(text, ",")
			seen := map[string]bool{}
			for _, h := range header {
				ok := false
				for _, k := range known {
					ok = ok || h == k
				}
				if !ok {
					return fmt.Errorf("%s:%d: unknown column %q in header (known: %s)", file, line, h, strings.Join(known, ","))
				}
				if seen[h] {
					return fmt.Errorf("%s:%d: column %q twice in header", file, line, h)
				}
				seen[h] = true
			}
			for _, k := range required {
				if !seen[k] {
					return fmt.Errorf("%s:%d: header lacks column %q", file, line, k)
				}
			}
			continue
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		fields := strings.Split(text, ",")
		if len(fields) != len(header) {
			return fmt.Errorf("%s:%d: %d columns, header has %d", file, line, len(fields), len(header))
		}
		m := make(map[string]string, len(header))
		for i, h := range header {
			m[h] = strings.TrimSpace(fields[i])
		}
		if err := row(line, m); err != nil {
			return fmt.Errorf("%s:%d: %w", file, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: %w", file, line+1, err)
	}
	if header == nil {
		return fmt.Errorf("%s:1: empty file, no header", file)
	}
	return nil
}

func intField(f map[string]string, col string, lo, hi int64) (int64, error) {
	v, err := strconv.ParseInt(f[col], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("column %s: bad number %q", col, f[col])
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("column %s: %d out of range [%d, %d]", col, v, lo, hi)
	}
	return v, nil
}

// ParseNodes reads the node list.
func ParseNodes(r io.Reader, file string) ([]TraceNode, error) {
	var out []TraceNode
	err := csvRows(r, file, nodeColumns, nodeColumns, func(_ int, f map[string]string) error {
		n := TraceNode{Name: f["sn"], Model: f["model"]}
		if n.Name == "" {
			return fmt.Errorf("column sn: empty node name")
		}
		var err error
		if n.CPU, err = intField(f, "cpu_milli", 0, 1<<40); err != nil {
			return err
		}
		if n.MemMiB, err = intField(f, "memory_mib", 0, 1<<40); err != nil {
			return err
		}
		g, err := intField(f, "gpu", 0, 64)
		if err != nil {
			return err
		}
		n.GPUs = int(g)
		if n.GPUs > 0 && n.Model == "" {
			return fmt.Errorf("column model: empty for a node with %d GPUs", n.GPUs)
		}
		out = append(out, n)
		return nil
	})
	return out, err
}

// ParsePods reads the pod list. num_gpu > 1 takes whole GPUs; num_gpu = 1
// takes gpu_milli of one GPU.
func ParsePods(r io.Reader, file string) ([]TracePod, error) {
	var out []TracePod
	required := []string{"name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"}
	err := csvRows(r, file, podColumns, required, func(_ int, f map[string]string) error {
		p := TracePod{Name: f["name"]}
		var err error
		if p.Task.CPU, err = intField(f, "cpu_milli", 0, 1<<40); err != nil {
			return err
		}
		if p.Task.Mem, err = intField(f, "memory_mib", 0, 1<<40); err != nil {
			return err
		}
		n, err := intField(f, "num_gpu", 0, 64)
		if err != nil {
			return err
		}
		m, err := intField(f, "gpu_milli", 0, gpu.MilliPerGPU)
		if err != nil {
			return err
		}
		p.Task.NumGPU = int(n)
		switch {
		case n == 0:
			if m != 0 {
				return fmt.Errorf("column gpu_milli: %d for a pod with num_gpu 0", m)
			}
		case n == 1:
			if m == 0 {
				return fmt.Errorf("column gpu_milli: 0 for a pod with num_gpu 1")
			}
			p.Task.GPUMilli = m
		default:
			p.Task.GPUMilli = gpu.MilliPerGPU
		}
		p.Task.Models = f["gpu_spec"]
		out = append(out, p)
		return nil
	})
	return out, err
}

func parseFile[T any](path string, parse func(io.Reader, string) ([]T, error)) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parse(f, path)
}

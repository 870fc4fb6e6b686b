// What the server replay reads from the server's debug and metrics
// endpoints: CPU profiles and execution traces, API writes by verb and
// resource, and kube-scheduler's attempt and extension-point timings.

package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
)

// fetchProfile writes the server's /debug/pprof/<kind> over d, starting
// after delay, to file; a failure is reported, not fatal.
func fetchProfile(ctx context.Context, client kubernetes.Interface, kind, file string, delay, d time.Duration) {
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return
	}
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/"+kind).
		Param("seconds", strconv.Itoa(int(d.Seconds()))).Timeout(d + 30*time.Second).DoRaw(ctx)
	if err == nil {
		err = os.WriteFile(file, raw, 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gputrace: %s: %v\n", kind, err)
	}
}

// metricsPage is the server's /metrics page: the API server, etcd and
// kube-scheduler share the process and its registry.
func metricsPage(ctx context.Context, client kubernetes.Interface) ([]byte, error) {
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("server metrics: %w", err)
	}
	return raw, nil
}

// samples calls fn with each sample of the page whose metric name starts
// with prefix.
func samples(page []byte, prefix string, fn func(metric, labels string, v float64)) {
	for _, line := range strings.Split(string(page), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(val, &v); err != nil {
			continue
		}
		metric, labels, _ := strings.Cut(strings.TrimSuffix(name, "}"), "{")
		fn(metric, labels, v)
	}
}

// apiWrites is the difference of apiserver_request_total between two
// pages for the write verbs, as "VERB resource[/subresource] N", most
// first, after the total.
func apiWrites(before, after []byte) []string {
	count := func(page []byte) map[string]float64 {
		m := map[string]float64{}
		samples(page, "apiserver_request_total{", func(_, labels string, v float64) {
			switch verb := label(labels, "verb"); verb {
			case "POST", "PUT", "PATCH", "DELETE":
				res := label(labels, "resource")
				if sub := label(labels, "subresource"); sub != "" {
					res += "/" + sub
				}
				m[verb+" "+res] += v
			}
		})
		return m
	}
	b, a := count(before), count(after)
	var total float64
	type kv struct {
		k string
		v float64
	}
	var diffs []kv
	for k, v := range a {
		if d := v - b[k]; d > 0 {
			diffs = append(diffs, kv{k, d})
			total += d
		}
	}
	slices.SortFunc(diffs, func(x, y kv) int {
		if x.v != y.v {
			return cmp.Compare(y.v, x.v)
		}
		return strings.Compare(x.k, y.k)
	})
	out := []string{fmt.Sprintf("total %.0f", total)}
	for _, d := range diffs {
		out = append(out, fmt.Sprintf("%s %.0f", d.k, d.v))
	}
	return out
}

// schedulerMetrics summarises kube-scheduler's metrics from the page:
// attempts by result, mean attempt duration, mean duration per extension
// point.
func schedulerMetrics(page []byte) []string {
	sums, counts := map[string]float64{}, map[string]float64{}
	var out []string
	samples(page, "scheduler_", func(metric, labels string, v float64) {
		switch {
		case metric == "scheduler_schedule_attempts_total" && v > 0:
			out = append(out, fmt.Sprintf("attempts %s %.0f", label(labels, "result"), v))
		case metric == "scheduler_scheduling_attempt_duration_seconds_sum":
			sums["attempt "+label(labels, "result")] += v
		case metric == "scheduler_scheduling_attempt_duration_seconds_count":
			counts["attempt "+label(labels, "result")] += v
		case metric == "scheduler_framework_extension_point_duration_seconds_sum":
			sums[label(labels, "extension_point")] += v
		case metric == "scheduler_framework_extension_point_duration_seconds_count":
			counts[label(labels, "extension_point")] += v
		}
	})
	var keys []string
	for k := range sums {
		if counts[k] > 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s %.2f ms x %.0f", k, 1000*sums[k]/counts[k], counts[k]))
	}
	return out
}

// label returns a label's value from `a="x",b="y"`.
func label(labels, name string) string {
	for _, kv := range strings.Split(labels, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// netcheck is a tiny HTTP client for tests and debugging inside the
// cluster: it fetches a URL until it answers or a deadline passes, prints
// the body and exits 0, or prints the last error and exits 1. With
// --probe it instead asks once per interval until it is killed and prints
// one timestamped line per request, so a test can see which requests of a
// window (a node or server outage) were answered. With --latency N it
// times N requests on one kept-alive connection once the URL answers and
// prints "latency n=N p50=... p99=..." (microseconds).
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	expect := flag.String("expect", "", "succeed only if the body contains this text")
	count := flag.Int("count", 1, "number of successful requests to make")
	probe := flag.Duration("probe", 0, "if set, request once per this interval until killed, printing a line per request")
	latency := flag.Int("latency", 0, "if set, time this many requests once the URL answers and print their p50 and p99")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: netcheck [--timeout 60s] [--expect TEXT] [--count N] [--probe INTERVAL] [--latency N] URL")
		os.Exit(2)
	}
	url := flag.Arg(0)
	client := &http.Client{Timeout: 5 * time.Second}
	if *probe > 0 {
		probeForever(client, url, *expect, *probe)
	}
	deadline := time.Now().Add(*timeout)
	var lastErr error
	for ok := 0; ok < *count; {
		body, err := get(client, url)
		if err == nil && !strings.Contains(body, *expect) {
			err = fmt.Errorf("body %q does not contain %q", body, *expect)
		}
		if err == nil {
			fmt.Print(body)
			ok++
			continue
		}
		lastErr = err
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "netcheck: %s: %v\n", url, lastErr)
			os.Exit(1)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if *latency > 0 {
		if err := timeRequests(client, url, *latency); err != nil {
			fmt.Fprintf(os.Stderr, "netcheck: %s: %v\n", url, err)
			os.Exit(1)
		}
	}
}

// timeRequests prints the p50 and p99 of n sequential requests.
func timeRequests(client *http.Client, url string, n int) error {
	took := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := get(client, url); err != nil {
			return err
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	at := func(p int) int64 { return took[min(len(took)-1, len(took)*p/100)].Microseconds() }
	fmt.Printf("\nlatency n=%d p50=%d p99=%d\n", n, at(50), at(99))
	return nil
}

// probeForever prints "<unix-milli> ok" or "<unix-milli> fail <error>"
// for one request per interval.
func probeForever(client *http.Client, url, expect string, interval time.Duration) {
	for tick := time.NewTicker(interval); ; <-tick.C {
		at := time.Now().UnixMilli()
		body, err := get(client, url)
		if err == nil && !strings.Contains(body, expect) {
			err = fmt.Errorf("body %q does not contain %q", body, expect)
		}
		if err != nil {
			fmt.Printf("%d fail %v\n", at, err)
			continue
		}
		fmt.Printf("%d ok\n", at)
	}
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s: %.300s", resp.Status, b)
	}
	return string(b), nil
}

package serverless

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the gateway's Prometheus series, labelled by function.
type metrics struct {
	registry       *prometheus.Registry
	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	coldStarts     *prometheus.CounterVec
	coldLatency    *prometheus.HistogramVec
	queueDepth     *prometheus.GaugeVec
	inFlight       *prometheus.GaugeVec
	replicas       *prometheus.GaugeVec
	desired        *prometheus.GaugeVec
	scaleDecisions *prometheus.CounterVec
}

func newMetrics() *metrics {
	fn := []string{"namespace", "function"}
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_function_requests_total",
			Help: "Requests answered by the function gateway, by status code and backend (pod or wasm-host)."}, append(fn, "code", "backend")),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "strata_function_request_duration_seconds",
			Help: "Gateway request latency to the response headers.", Buckets: buckets}, fn),
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_function_cold_starts_total",
			Help: "Requests that arrived while the function had no ready replica."}, fn),
		coldLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "strata_function_cold_start_duration_seconds",
			Help: "Latency of cold-start requests to the response headers.", Buckets: buckets}, fn),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_function_queue_depth",
			Help: "Requests waiting for a ready replica."}, fn),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_function_in_flight_requests",
			Help: "Requests in flight through the gateway."}, fn),
		replicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_function_ready_replicas",
			Help: "Ready replicas."}, fn),
		desired: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_function_desired_replicas",
			Help: "Replicas the autoscaler asks for."}, fn),
		scaleDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_function_scale_changes_total",
			Help: "Changes of the desired replica count, by direction."}, append(fn, "direction")),
	}
	m.registry.MustRegister(m.requests, m.latency, m.coldStarts, m.coldLatency, m.queueDepth, m.inFlight,
		m.replicas, m.desired, m.scaleDecisions, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) forget(ns, name string) {
	l := map[string]string{"namespace": ns, "function": name}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.requests, m.latency, m.coldStarts, m.coldLatency, m.queueDepth, m.inFlight, m.replicas, m.desired, m.scaleDecisions,
	} {
		v.DeletePartialMatch(l)
	}
}

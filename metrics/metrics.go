package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds every Steergate metric plus the Go and process
// collectors.
var Registry = prometheus.NewRegistry()

var latency = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

var (
	Requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "steergate_requests_total", Help: "Requests by route, status, strategy and experiment arm.",
	}, []string{"route", "status", "strategy", "arm"})
	RequestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "steergate_request_duration_seconds", Help: "End-to-end request latency.", Buckets: latency,
	}, []string{"route", "strategy", "stream"})
	TimeToFirstToken = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "steergate_time_to_first_token_seconds", Help: "Time from request to the first streamed byte.", Buckets: latency,
	}, []string{"route", "strategy"})
	BackendDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "steergate_backend_duration_seconds", Help: "Backend call latency by outcome.", Buckets: latency,
	}, []string{"backend", "outcome"})
	RewardDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "steergate_reward_duration_seconds", Help: "Reward-model scoring latency per call.", Buckets: latency,
	}, []string{"reward", "outcome"})
	RewardBatch = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "steergate_reward_batch_size", Help: "Samples per reward-model run.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
	}, []string{"reward"})
	Samples = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "steergate_samples_per_request", Help: "Samples a steered request drew.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
	}, []string{"strategy"})
	Tokens = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "steergate_backend_tokens_per_request", Help: "Backend tokens (prompt + completion) a request spent.",
		Buckets: prometheus.ExponentialBuckets(16, 2, 12),
	}, []string{"strategy"})
	Cache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "steergate_cache_requests_total", Help: "Cache lookups and writes by cache, operation and result (hit, miss, error).",
	}, []string{"cache", "op", "result"})
	Inflight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "steergate_inflight_requests", Help: "Requests being served.",
	})
	Queued = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "steergate_queued_requests", Help: "Requests waiting for a slot.",
	})
	BackendState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "steergate_backend_up", Help: "1 when the backend's circuit is closed (serving), 0 when open.",
	}, []string{"backend"})
)

func init() {
	Registry.MustRegister(Requests, RequestDuration, TimeToFirstToken, BackendDuration, RewardDuration, RewardBatch,
		Samples, Tokens, Cache, Inflight, Queued, BackendState,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// Handler serves the Prometheus text format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{})
}
